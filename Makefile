# Two entry points for a newcomer: `make demo` (the default pipeline on a synthetic task)
# and `make test`. Both create .venv and install torch 2.13.0 (CPU wheel) *before* the
# project, so pip never resolves torch to a multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check torch==2.13.0
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/rnncompress run --out runs/demo

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
