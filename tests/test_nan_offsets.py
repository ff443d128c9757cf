"""A NaN deformable-convolution offset must never reach torchvision's kernels, whose CPU version
crashes the process on one (segfault). The check runs in a subprocess so that a regression fails
this test instead of killing the test run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import yolactpp

_PROBE = textwrap.dedent(
    """
    import torch
    from yolactpp import ops
    from yolactpp.backbone.dcn import ModulatedDeformConv2d

    torch.manual_seed(0)
    x = torch.randn(1, 4, 12, 12, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    mask = torch.rand(1, 9, 12, 12, dtype=torch.float64)
    offset = torch.randn(1, 18, 12, 12, dtype=torch.float64)
    offset[0, :, 3:8, 3:8] = float("nan")
    far = offset.nan_to_num(nan=-1e6)  # what NaN must mean: the tap samples outside and reads zero
    with ops.use_backend("fallback"):
        expected = ops.deform_conv2d(x, far, weight, mask=mask, padding=1)
        got = ops.deform_conv2d(x, offset, weight, mask=mask, padding=1)
        assert torch.equal(got, expected), (got - expected).abs().max()
        for dtype in (torch.float32, torch.bfloat16):  # bf16 goes through torchvision in float32
            low = ops.deform_conv2d(x.to(dtype), offset.to(dtype), weight.to(dtype), mask=mask.to(dtype), padding=1)
            assert torch.isfinite(low).all()
    x.requires_grad_()  # with gradients: the native op and its backward when built, else torchvision
    out = ops.deform_conv2d(x, offset, weight, mask=mask, padding=1)
    out.sum().backward()
    assert torch.allclose(out.detach(), expected, rtol=0, atol=1e-12), (out.detach() - expected).abs().max()
    assert torch.isfinite(x.grad).all()
    layer = ModulatedDeformConv2d(4, 5)  # NaN weights in the offset branch: no crash
    with torch.no_grad():
        layer.conv_offset_mask.weight.fill_(float("nan"))
    layer(x.float().detach().requires_grad_()).sum().backward()
    print("survived")
    """
)


def test_nan_offsets_read_zero_instead_of_crashing() -> None:
    src = str(Path(yolactpp.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"exit code {proc.returncode}\n{proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "survived"
