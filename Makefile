# Two entry points for a newcomer: `make demo` (the default pipeline on a synthetic task)
# and `make test`. Both create .venv and install torch 2.13.0 (CPU wheel) *before* the
# project, so pip never resolves torch to a multi-GB CUDA build. On the development and CI
# machines pip's configured wheel directory holds torch-2.13.0+cpu; on a machine whose pip
# sees only PyPI, name PyTorch's CPU index:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
VENV ?= .venv
TORCH_INDEX ?=
TORCH_FLAGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
PY := $(VENV)/bin/python

.PHONY: setup test demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(TORCH_FLAGS) torch==2.13.0
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/rnncompress run --out runs/demo

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
