#!/usr/bin/env bash
# Install mmcv==2.1.0 compiled with its CPU ops into the given interpreter's environment.
# Usage: install_mmcv.sh PYTHON [WHEEL_CACHE_DIR]
# mmcv's setup.py needs setuptools<81 (pkg_resources), torch importable at build time
# (hence --no-build-isolation; an isolated build silently skips the ops) and MMCV_WITH_OPS=1.
set -euo pipefail
PY=${1:?usage: install_mmcv.sh PYTHON [WHEEL_CACHE_DIR]}
CACHE=${2:-}
MMCV_VERSION=2.1.0

have_full_mmcv() {
  "$PY" - <<PYEOF 2>/dev/null
import importlib.util, sys
import mmcv
ok = mmcv.__version__ == '$MMCV_VERSION' and importlib.util.find_spec('mmcv._ext') is not None
sys.exit(0 if ok else 1)
PYEOF
}

if have_full_mmcv; then
  echo "[install] mmcv $MMCV_VERSION with ops already installed"
  exit 0
fi
# mmcv and mmcv-lite both own the mmcv/ module: never keep both.
"$PY" -m pip uninstall -y -q mmcv-lite mmcv 2>/dev/null || true

wheel=""
if [ -n "$CACHE" ]; then
  tag=$("$PY" -c "import sys, torch; print(f'py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}')")
  dir="$CACHE/$tag"
  wheel=$(ls "$dir"/mmcv-$MMCV_VERSION-*.whl 2>/dev/null | head -n 1 || true)
fi
if [ -z "$wheel" ]; then
  echo "[install] compiling mmcv $MMCV_VERSION with CPU ops (about 10 minutes on 2 cores)"
  build=$(mktemp -d)
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PY" -m pip wheel -q --no-deps --no-build-isolation \
      --no-binary mmcv "mmcv==$MMCV_VERSION" -w "$build"
  wheel=$(ls "$build"/mmcv-$MMCV_VERSION-*.whl | head -n 1)
  case "$wheel" in
    *py2.py3-none-any.whl) echo "mmcv built without ops: $wheel" >&2; exit 1;;
  esac
  if [ -n "$CACHE" ]; then
    mkdir -p "$dir"
    cp "$wheel" "$dir/.tmp-$(basename "$wheel")" && mv "$dir/.tmp-$(basename "$wheel")" "$dir/$(basename "$wheel")"
  fi
fi
"$PY" -m pip install -q --no-deps "$wheel"
have_full_mmcv || { echo "mmcv $MMCV_VERSION installed but mmcv._ext is missing" >&2; exit 1; }
echo "[install] mmcv $MMCV_VERSION with ops installed"
