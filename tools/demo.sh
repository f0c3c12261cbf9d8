#!/usr/bin/env bash
# `make demo`: the whole WSSS pipeline on the embedded toy dataset, on CPU, stage by
# stage with the standard tools (the same commands work on VOC with its configs):
#   [1] toy data  [2] classifier with OAA (its final model = the CAM baseline)
#   [3] seeds: CAM export + seed evaluation of CAM and OAA maps
#   [4] pseudo labels (OAA saliency rule + dense CRF) + their quality
#   [5] DeepLab-LargeFOV on the pseudo labels  [6] the same on GT (upper bound)
#   [7] evaluation (single scale, and multi-scale + flip + CRF), summary.json,
#       overview.png
# Re-running skips finished stages (training resumes from its last checkpoint).
# DEMO_FAST=1 runs a shortened version (for CI).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
WORK=${DEMO_WORK_DIR:-work_dirs/demo}
DATA=${DEMO_DATA_ROOT:-data/toy}
TOY_ARGS=()
CLS_OPTS=()
SEG_OPTS=()
if [ "${DEMO_FAST:-0}" = "1" ]; then
  TOY_ARGS=(--num-train 48 --num-val 16)
  CLS_OPTS=(train_cfg.max_epochs=15 "param_scheduler.0.end=15")
  SEG_OPTS=(train_cfg.max_iters=60 train_cfg.val_interval=1000
            "param_scheduler.0.end=60" default_hooks.checkpoint.interval=60)
fi
DROOT=(train_dataloader.dataset.data_root="$DATA" val_dataloader.dataset.data_root="$DATA"
       test_dataloader.dataset.data_root="$DATA")
T0=$SECONDS
TS=$SECONDS
stage() {
  [ "$1" -gt 1 ] && echo "   (stage $(( $1 - 1 )) took $(( SECONDS - TS )) s)"
  TS=$SECONDS
  echo; echo "== [$1/7] $2"; date +%T
}

stage 1 "toy dataset -> $DATA"
"$PY" tools/misc/make_toy_dataset.py --out "$DATA" --overwrite "${TOY_ARGS[@]}"
mkdir -p "$WORK"
if ! cmp -s "$DATA/toy_meta.json" "$WORK/toy_meta.json"; then
  # results made on other toy data are stale
  rm -rf "$WORK" "$DATA/PseudoLabels/demo" && mkdir -p "$WORK"
  cp "$DATA/toy_meta.json" "$WORK/toy_meta.json"
fi

stage 2 "classifier + OAA: tools/train.py configs/toy/oaa_r18_toy.py"
"$PY" tools/train.py configs/toy/oaa_r18_toy.py --work-dir "$WORK/cls" --resume \
  --cfg-options "${DROOT[@]}" "${CLS_OPTS[@]}"
CKPT=$(cat "$WORK/cls/last_checkpoint")

stage 3 "seeds: tools/export_cams.py + tools/eval_seeds.py (CAM and OAA maps)"
"$PY" tools/export_cams.py configs/toy/oaa_r18_toy.py "$CKPT" --out "$WORK/cams" \
  --cfg-options "${DROOT[@]}"
"$PY" tools/eval_seeds.py "$WORK/cams" configs/toy/oaa_r18_toy.py --no-progress \
  --out "$WORK/seeds_cam.json" --cfg-options "${DROOT[@]}" | tail -n 1
"$PY" tools/eval_seeds.py "$WORK/cls/oaa_maps" configs/toy/oaa_r18_toy.py --no-progress \
  --out "$WORK/seeds_oaa.json" --cfg-options "${DROOT[@]}" | tail -n 1

stage 4 "pseudo labels: tools/make_pseudo_labels.py (OAA saliency rule + dense CRF)"
# the rule is the config's pseudo_label_rule: SaliencyBackground + the irn label CRF
# with its kernel scaled to the 128-px toy images
"$PY" tools/make_pseudo_labels.py configs/toy/oaa_r18_toy.py "$WORK/cams" \
  --out "$DATA/PseudoLabels/demo" --workers 2 --eval --json "$WORK/pseudo_labels.json" \
  --cfg-options "${DROOT[@]}" | tail -n 1

stage 5 "DeepLab-LargeFOV on pseudo labels: tools/train.py configs/toy/largefov_r18_toy_pseudo.py"
"$PY" tools/train.py configs/toy/largefov_r18_toy_pseudo.py --work-dir "$WORK/seg_pseudo" \
  --resume --cfg-options "${DROOT[@]}" \
  train_dataloader.dataset.data_prefix.pseudo_label_path=PseudoLabels/demo "${SEG_OPTS[@]}"

stage 6 "DeepLab-LargeFOV on GT: tools/train.py configs/toy/largefov_r18_toy_gt.py"
"$PY" tools/train.py configs/toy/largefov_r18_toy_gt.py --work-dir "$WORK/seg_gt" \
  --resume --cfg-options "${DROOT[@]}" "${SEG_OPTS[@]}"

stage 7 "evaluation: tools/test.py (single scale; --tta = multi-scale + flip + CRF), summary"
for v in pseudo gt; do
  for mode in single tta; do
    out="$WORK/seg_${v}_metrics_${mode}.json"
    [ -f "$out" ] && continue
    extra=()
    [ "$mode" = tta ] && extra=(--tta)
    echo "tools/test.py configs/toy/largefov_r18_toy_${v}.py ${extra[*]:-}"
    "$PY" tools/test.py "configs/toy/largefov_r18_toy_${v}.py" \
      "$(cat "$WORK/seg_${v}/last_checkpoint")" --work-dir "$WORK/seg_${v}/test" \
      --metrics-out "$out" "${extra[@]}" --cfg-options "${DROOT[@]}" \
      > "$WORK/seg_${v}_test_${mode}.log" 2>&1 || {
        cat "$WORK/seg_${v}_test_${mode}.log"; exit 1; }
  done
done
"$PY" tools/misc/demo_summary.py "$WORK" --data-root "$DATA"
echo "   (stage 7 took $(( SECONDS - TS )) s; demo total $(( SECONDS - T0 )) s)"
