#!/usr/bin/env bash
# Distributed CAM export: tools/dist_export_cams.sh CONFIG CHECKPOINT NGPUS --out DIR [...]
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}
PYTHONPATH="$(dirname "$0")/..":$PYTHONPATH \
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} \
"$PYTHON" -m torch.distributed.run --nproc_per_node=$GPUS --master_port=$PORT \
    "$(dirname "$0")/export_cams.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
