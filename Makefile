# One-command set-up for a fresh machine: `make demo` (install + a prediction), `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.yolactpp-installed
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: setup demo test test-pt2 bench ops clean gpu-check gpu-check-dry

setup: $(STAMP)

# The native ops (src/yolactpp/_ops) compile at install time against the installed torch;
# ninja makes that parallel. A change to them or to setup.py re-runs the install.
OPS_SOURCES := $(shell find src/yolactpp/_ops -type f 2>/dev/null)

$(STAMP): pyproject.toml setup.py $(OPS_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH_SPEC) ninja
	$(PY) -m pip install --no-build-isolation -e ".[dev]"
	touch $(STAMP)

# Rebuild only the native ops in place (yolactpp/_C*.so), e.g. after editing a kernel.
ops:
	$(PY) setup.py build_ext --inplace

bench: setup
	$(PY) benchmarks/bench_ops.py
	$(PY) benchmarks/bench_e2e.py --reps 10 --compile --all-models
	$(PY) benchmarks/bench_ceiling.py --models yolact_plus_resnet50,yolact_plus_base,yolact_resnet50,yolact_base,yolact_darknet53,yolact_im700

# GPU check (docs/performance.md, "GPU check"): on a CUDA machine with no network, from a clean
# checkout with the image's python3 (no setup: it would download torch); wheels it lacks come from
# .whl/ (scripts/gpu_check_prepare.sh). The dry run is the same script here, CUDA steps skipped.
gpu-check:
	scripts/gpu_check.sh

gpu-check-dry: setup
	PYTHON=$(PY) scripts/gpu_check.sh --cpu-dry-run

demo: setup
	$(PY) scripts/demo.py

# Static checks first (ruff: lint rules in pyproject; mypy: src/, incremental cache in .mypy_cache), then the tests.
test: setup
	$(PY) -m ruff check src tests
	$(PY) -m mypy
	$(MAKE) --no-print-directory test-pt2
	$(PY) -m pytest -q

# A real .pt2 round trip (AOTInductor compile + a child process): too slow for the default run
# (1-3 min on 2 shared cores), so `make test` runs it as its own step first, with a time limit.
test-pt2: setup
	timeout 600 $(PY) -m pytest -q -m pt2_package tests/test_bite_pt2.py tests/test_export_verify.py

clean:
	rm -rf $(VENV) build src/*.egg-info src/yolactpp/_C*.so
