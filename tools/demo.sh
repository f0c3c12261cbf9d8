#!/usr/bin/env bash
# `make demo`: the embedded toy pipeline on CPU.
# Until the WSSS stages land, the demo trains the fully supervised toy baseline
# (the upper bound every WSSS method is compared with) and evaluates it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}

echo "== [1/3] toy dataset -> data/toy"
# --overwrite: data/toy belongs to the demo; it is regenerated only when the
# generator parameters changed (same parameters -> nothing is written)
"$PY" tools/misc/make_toy_dataset.py --out data/toy --overwrite
if ! cmp -s data/toy/toy_meta.json "$WORK/toy_meta.json"; then
  # results made on other toy data are stale
  rm -rf "$WORK" && mkdir -p "$WORK" && cp data/toy/toy_meta.json "$WORK/toy_meta.json"
fi

echo "== [2/3] supervised baseline: tools/train.py configs/toy/supervised_toy.py"
# --resume continues an interrupted run and returns at once when it is complete
"$PY" tools/train.py configs/toy/supervised_toy.py --work-dir "$WORK/supervised_toy" \
  --resume ${DEMO_TRAIN_ARGS:-}

echo "== [3/3] evaluation: tools/test.py on val"
"$PY" tools/test.py configs/toy/supervised_toy.py "$(cat "$WORK/supervised_toy/last_checkpoint")" \
  --work-dir "$WORK/supervised_toy/test"
