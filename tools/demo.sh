#!/usr/bin/env bash
# `make demo [METHOD=oaa]`: the whole WSSS pipeline on the embedded toy dataset, on
# CPU, stage by stage with the standard tools (the same commands work on VOC with its
# configs). METHOD names the seed method: configs/toy/${METHOD}_r18_toy.py, a config
# with a `method` dict (docs/extending.md): cam, oaa (default), oaa_drop (OAA++),
# iam (OAA+), iam_drop (OAA+++), gain (GAIN), gain_ext-p (GAIN_ext-p), edam (EDAM),
# vwl_l (VWL-L; METHOD=vwl is the same), vwl_m (VWL-M).
#   [1] toy data  [2] the method's classifier (first the run it requires, if any)
#   [3] seeds: CAM export of the classifier + seed evaluation of the CAMs and of the
#       method's seed maps
#   [4] pseudo labels (the config's pseudo_label_rule; without one, the seed
#       threshold rule at the best seed threshold) + their quality
#   [5] DeepLab-LargeFOV on the pseudo labels  [6] the same on GT (upper bound)
#   [7] evaluation (single scale, and multi-scale + flip + CRF), summary.json,
#       overview.png
# Re-running skips finished stages (training resumes from its last checkpoint).
# DEMO_FAST=1 runs a shortened version (for CI) on its own data (data/toy_fast) and
# work dir (work_dirs/demo_fast/METHOD).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
METHOD=${METHOD:-oaa}
# VWL: the learned codebook, the paper's "Ours-L"
[ "$METHOD" = vwl ] && METHOD=vwl_l
CFG=configs/toy/${METHOD}_r18_toy.py
# the fast form has its own toy data and work dir: its 48 + 16 images must never
# replace the full toy set in data/toy that other runs (the method comparison,
# trainings with the toy configs) read
if [ "${DEMO_FAST:-0}" = "1" ]; then
  WORK=${DEMO_WORK_DIR:-work_dirs/demo_fast/$METHOD}
  DATA=${DEMO_DATA_ROOT:-data/toy_fast}
else
  WORK=${DEMO_WORK_DIR:-work_dirs/demo/$METHOD}
  DATA=${DEMO_DATA_ROOT:-data/toy}
fi
PSEUDO=PseudoLabels/demo_$METHOD
# the method declaration: "name", "seeds" and one "requires KEY CONFIG FOLDER" line per
# run it needs (e.g. OAA+ trains on the maps of the OAA run)
if ! INFO=$("$PY" -c '
import sys
from mmwsss.evaluation.compare import load_method
spec = load_method(sys.argv[1])
if spec is None:
    sys.exit(f"{sys.argv[1]} declares no method (no `method` dict)")
print("name", spec.name.replace(" ", "_"))
print("seeds", spec.seeds)
print("rule", "yes" if spec.pseudo_label_rule else "no")
for key, (cfg, folder) in spec.requires.items():
    print("requires", key, cfg, folder)
' "$CFG" 2>&1); then
  echo "METHOD=$METHOD: $CFG is not a method config (${INFO##*$'\n'})." >&2
  echo "Methods: $(cd configs/toy && grep -l '^method = dict' ./*_r18_toy.py | sed 's|./||; s|_r18_toy.py||' | tr '\n' ' ')" >&2
  exit 2
fi
M_NAME=$(awk '$1 == "name" {print $2}' <<< "$INFO")
M_SEEDS=$(awk '$1 == "seeds" {print $2}' <<< "$INFO")
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
if ! cmp -s "$DATA/toy_meta.json" "$WORK/toy_meta.json" || \
   [ "$(cat "$WORK/method" 2>/dev/null)" != "$METHOD" ]; then
  # results made on other toy data (or by another method) are stale
  rm -rf "$WORK" "$DATA/$PSEUDO" && mkdir -p "$WORK"
  cp "$DATA/toy_meta.json" "$WORK/toy_meta.json"
  echo "$METHOD" > "$WORK/method"
fi

stage 2 "classifier ($M_NAME): tools/train.py $CFG"
REQ_OPTS=()
while read -r _ key req folder; do
  stem=$(basename "$req" .py)
  echo "$M_NAME needs the $folder of $stem: tools/train.py $req"
  "$PY" tools/train.py "$req" --work-dir "$WORK/$stem" --resume \
    --cfg-options "${DROOT[@]}" "${CLS_OPTS[@]}" < /dev/null
  if [ "$folder" = last_checkpoint ]; then
    # the checkpoint that run ended with (e.g. GAIN_ext-p fine-tunes the CAM classifier)
    REQ_OPTS+=("$key=$(cat "$WORK/$stem/last_checkpoint")")
  else
    REQ_OPTS+=("$key=$WORK/$stem/$folder")
  fi
done < <(grep '^requires ' <<< "$INFO" || true)
"$PY" tools/train.py "$CFG" --work-dir "$WORK/cls" --resume \
  --cfg-options "${DROOT[@]}" "${CLS_OPTS[@]}" "${REQ_OPTS[@]}"
CKPT=$(cat "$WORK/cls/last_checkpoint")

stage 3 "seeds: tools/export_cams.py + tools/eval_seeds.py (CAM, $M_NAME)"
"$PY" tools/export_cams.py "$CFG" "$CKPT" --out "$WORK/cams" \
  --cfg-options "${DROOT[@]}"
"$PY" tools/eval_seeds.py "$WORK/cams" "$CFG" --no-progress \
  --out "$WORK/seeds_cam.json" --cfg-options "${DROOT[@]}" | tail -n 1
SEEDS=$WORK/cams
if [ "$M_SEEDS" != cams ]; then
  SEEDS=$WORK/cls/$M_SEEDS
  "$PY" tools/eval_seeds.py "$SEEDS" "$CFG" --no-progress \
    --out "$WORK/seeds_method.json" --cfg-options "${DROOT[@]}" | tail -n 1
fi

stage 4 "pseudo labels from the $M_NAME seeds: tools/make_pseudo_labels.py"
RULE=()
if [ "$(awk '$1 == "rule" {print $2}' <<< "$INFO")" = no ]; then
  # no rule in the config: the seed rule itself at the best seed threshold
  THR=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["best_threshold"])' \
    "$WORK/$([ "$M_SEEDS" = cams ] && echo seeds_cam || echo seeds_method).json")
  RULE=(--rule ThresholdBackground --rule-options "threshold=$THR")
fi
"$PY" tools/make_pseudo_labels.py "$CFG" "$SEEDS" "${RULE[@]}" \
  --out "$DATA/$PSEUDO" --workers 2 --eval --json "$WORK/pseudo_labels.json" \
  --cfg-options "${DROOT[@]}" | tail -n 1

stage 5 "DeepLab-LargeFOV on pseudo labels: tools/train.py configs/toy/largefov_r18_toy_pseudo.py"
"$PY" tools/train.py configs/toy/largefov_r18_toy_pseudo.py --work-dir "$WORK/seg_pseudo" \
  --resume --cfg-options "${DROOT[@]}" \
  train_dataloader.dataset.data_prefix.pseudo_label_path="$PSEUDO" "${SEG_OPTS[@]}"

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
"$PY" tools/misc/demo_summary.py "$WORK" --data-root "$DATA" --method "$METHOD" \
  --method-name "$M_NAME" --seeds-dir "$SEEDS" --pseudo-dir "$DATA/$PSEUDO"
echo "   (stage 7 took $(( SECONDS - TS )) s; demo total $(( SECONDS - T0 )) s)"
