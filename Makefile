# One-command set-up for a fresh machine: `make demo` (install + a prediction), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.yolactpp-installed
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard setup.py)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install --no-build-isolation -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info src/yolactpp/_C*.so
