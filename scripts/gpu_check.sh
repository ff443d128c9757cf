#!/usr/bin/env bash
# GPU check in one command (docs/performance.md, "GPU check"): build the native ops for the GPU
# found, run the CUDA tests, CUDA parity, the self-check, ONNX on CUDA and the benchmarks, within
# 8 minutes (the step limits add up to 460 s); results in gpu_check.json / .md / .log.
#   scripts/gpu_check.sh [--out DIR]       on a CUDA machine (wheels the image lacks: .whl/, see
#                                          scripts/gpu_check_prepare.sh)
#   scripts/gpu_check.sh --cpu-dry-run     the same steps here, CUDA ones skipped (CI runs this)
# Interpreter: $PYTHON, else .venv/bin/python if there is one, else python3 (a GPU image's own).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
