#!/usr/bin/env bash
# Run on a machine with PyPI before `scripts/gpu_check.sh` goes to a GPU machine without network:
# downloads into .whl/ (git-ignored; carried with the checkout) the wheels of the packages that
# machine's image lacks, for its Python (3.12, x86-64 Linux). The check installs them with
# `pip install --no-index --no-deps --target`, so every wheel needed is listed here, deps included.
# Not carried: onnxruntime-gpu (a 244 MiB wheel; the ONNX-on-CUDA step then reports it skipped).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PY_VERSION=${PY_VERSION:-3.12}
WHEELS=(
    "pycocotools==2.0.11"  # yolactpp's COCO masks and the parity tests; not in the GPU image
)
mkdir -p .whl
"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version "$PY_VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
