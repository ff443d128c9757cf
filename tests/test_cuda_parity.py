"""Parity on a CUDA device: the oracle cases (six models x two images) run on the GPU.

The same rules as on the CPU: float64 must match the goldens to their float64 tolerances (this is
what proves the CUDA kernels' logic), float32 to the float32 rules with TF32 switched off (TF32
convolutions are a speed choice with ~1e-3 relative error, not float32), and float16 / bfloat16
must keep the GPU's own float32 detections by test_bf16's rule (>= 85 % per case, >= 95 % pooled).
Skipped without a CUDA device; ``scripts/gpu_check.sh`` runs it on one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.oracle.checkpoints import CONFIGS
from tests.oracle.compare import IMAGES, check_float32, check_float64, golden, image_path, kept_fraction
from yolactpp import YolactPP

pytestmark = pytest.mark.cuda


@pytest.fixture(autouse=True)
def no_tf32() -> Iterator[None]:
    """Plain float32 arithmetic for the duration of a test (cuDNN allows TF32 by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module", params=CONFIGS)
def config(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def cuda_model(config: str, checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint(config)).to("cuda")


@pytest.fixture(scope="module")
def cuda_model64(config: str, checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint(config)).to("cuda", torch.float64)


@pytest.mark.parametrize("image", IMAGES)
def test_float64_on_cuda_matches_golden(cuda_model64: YolactPP, config: str, image: str) -> None:
    det = cuda_model64.predict(image_path(image))
    assert det.boxes.is_cuda and det.scores.dtype == torch.float64
    check_float64(det, golden(config, image))


@pytest.mark.parametrize("image", IMAGES)
def test_float32_on_cuda_within_tolerance(cuda_model: YolactPP, config: str, image: str) -> None:
    det = cuda_model.predict(image_path(image))
    assert det.boxes.is_cuda and det.scores.dtype == torch.float32
    check_float32(det, golden(config, image))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_half_precision_on_cuda_keeps_float32_detections(checkpoint, dtype: torch.dtype) -> None:
    matched = eligible = 0
    per_case = {}
    for config in CONFIGS:
        fp32 = YolactPP.from_pretrained(checkpoint(config)).to("cuda")
        half = YolactPP.from_pretrained(checkpoint(config)).to("cuda", dtype)
        for image in IMAGES:
            reference, candidate = fp32.predict(image_path(image)), half.predict(image_path(image))
            assert candidate.boxes.is_cuda and candidate.scores.dtype == torch.float32  # detection in float32
            m, e = kept_fraction(reference, candidate)
            per_case[f"{config}/{image}"] = f"{m}/{e}"
            assert m >= 0.85 * e, f"{config}/{image}: {dtype} kept only {m} of {e}"
            matched, eligible = matched + m, eligible + e
    assert eligible > 0
    assert matched >= 0.95 * eligible, f"{dtype} kept {matched} of {eligible} float32 detections: {per_case}"
