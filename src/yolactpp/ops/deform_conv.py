"""Modulated deformable convolution (DCNv2), a drop-in for torchvision.ops.deform_conv2d."""

from __future__ import annotations

import torch
import torchvision

from yolactpp.errors import InvalidArgumentError
from yolactpp.ops._loader import use_native

__all__ = ["deform_conv2d"]


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) != 2:
        raise InvalidArgumentError(f"{name} must be an int or a pair, got {value!r}")
    return int(value[0]), int(value[1])


def _nan_outside(offset: torch.Tensor, input: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
                 dilation: tuple[int, int]) -> torch.Tensor:
    """NaN offsets -> a finite offset that puts the tap more than two pixels outside the map: it reads
    zero with zero gradients, which is what the native kernels do with NaN. torchvision's kernels
    would turn a NaN position into a memory index (its CPU kernel crashes the process), and at
    -inf its offset gradient is NaN (inf * 0)."""
    span = sum(input.shape[-2:]) + sum(padding) + max(dilation) * max(weight.shape[-2:], default=1)
    return offset.masked_fill(torch.isnan(offset), -float(2 * span + 4))


def deform_conv2d(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int | tuple[int, int] = (1, 1),
    padding: int | tuple[int, int] = (0, 0),
    dilation: int | tuple[int, int] = (1, 1),
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deformable convolution v2 with torchvision's signature and semantics.

    ``offset`` holds, per offset group and kernel tap k, the pair (dy, dx) at channels 2k, 2k+1;
    ``mask`` (already passed through a sigmoid by the caller) modulates each tap. Runs the native
    kernels when available (the forward, and through autograd the backward for input, offset,
    mask, weight and bias), else torchvision's implementation. A NaN offset makes its tap read
    zero, with zero gradients, on every path (torchvision would crash on it).
    """
    stride_ = _pair(stride, "stride")
    padding_ = _pair(padding, "padding")
    dilation_ = _pair(dilation, "dilation")
    if input.dim() == 4 and input.shape[1] == 0:  # torchvision would divide by zero groups (SIGFPE)
        raise InvalidArgumentError(f"deform_conv2d: input has no channels: {list(input.shape)}")
    if use_native("deform_conv2d", input.device):
        # Under autocast the op's autocast kernel casts every argument to the autocast dtype;
        # gradients come from the native backward (yolactpp.ops._autograd).
        return torch.ops.yolactpp.deform_conv2d(
            input, offset, weight, bias, stride_, padding_, dilation_, mask
        )
    device_type = input.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type) and input.is_floating_point():
        # As the native autocast kernel: everything in the autocast dtype, the result too.
        dtype = torch.get_autocast_dtype(device_type)

        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None or t.dtype == torch.float64 else t.to(dtype)

        with torch.autocast(device_type, enabled=False):
            return deform_conv2d(
                cast(input), cast(offset), cast(weight), cast(bias),  # type: ignore[arg-type]
                stride_, padding_, dilation_, cast(mask),
            )
    offset = _nan_outside(offset, input, weight, padding_, dilation_)
    if input.dtype in (torch.bfloat16, torch.float16) and input.device.type == "cpu":
        # torchvision has no half-precision CPU kernel: compute in float32, hand back the input dtype.
        def up(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.float()

        out = torchvision.ops.deform_conv2d(
            input.float(), up(offset), up(weight), up(bias),
            stride=stride_, padding=padding_, dilation=dilation_, mask=up(mask),
        )
        return out.to(input.dtype)
    return torchvision.ops.deform_conv2d(
        input, offset, weight, bias, stride=stride_, padding=padding_, dilation=dilation_, mask=mask
    )
