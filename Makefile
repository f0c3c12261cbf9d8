# mmwsss — `make install`, `make test`, `make demo [METHOD=oaa]`.
# Everything goes into .venv/ at the repository root (CPU stack; see README for GPU installs).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The compiled mmcv wheel is kept here so that a re-install on the same machine does not
# compile again (about 10 minutes on 2 cores). Set MMWSSS_WHEEL_CACHE= to always compile.
MMWSSS_WHEEL_CACHE ?= $(HOME)/.cache/mmwsss/wheels
STAMP := $(VENV)/.mmwsss-installed
REQS := $(wildcard requirements/*.txt) setup.py

.PHONY: install test demo clean-venv

install: $(STAMP)

$(STAMP): $(REQS)
	@set -euo pipefail; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV); \
	echo "[install] torch (CPU wheel) + torchvision"; \
	$(PIP) install -q -r requirements/torch_cpu.txt; \
	$(PY) -c "import torch, sys; v=torch.__version__; sys.exit(0 if v.startswith('2.13.0') else 'unexpected torch ' + v)"; \
	echo "[install] build tools + mmengine"; \
	$(PIP) install -q -r requirements/build.txt mmengine==0.10.7; \
	bash tools/misc/install_mmcv.sh $(PY) "$(MMWSSS_WHEEL_CACHE)"; \
	echo "[install] mmseg, mmpretrain, runtime and test requirements"; \
	$(PIP) install -q -r requirements/mminstall.txt -r requirements/runtime.txt -r requirements/tests.txt; \
	echo "[install] mmwsss (editable)"; \
	$(PIP) install -q --no-build-isolation --no-deps -e .; \
	$(PY) -c "import torch; assert not torch.version.cuda or '$${MMWSSS_ALLOW_CUDA:-0}' == '1', 'a CUDA torch was installed'"; \
	$(PY) -m pip check; \
	touch $(STAMP); \
	echo "[install] done: $$($(PY) -c 'import mmwsss; print(mmwsss.__version__)')"

test: install
	$(PY) -m pytest tests -q

# the seed method of the demo: configs/toy/$(METHOD)_r18_toy.py (cam, oaa, oaa_drop,
# iam, iam_drop, gain, gain_ext-p, edam, vwl_l (= vwl), vwl_m)
METHOD ?= oaa

demo: install
	METHOD=$(METHOD) bash tools/demo.sh

clean-venv:
	rm -rf $(VENV)
