"""Fake (meta) kernels for the native ops, registered only once the library is loaded.

They give torch.compile / torch.export the output metadata without running a kernel. FastNMS's
output length depends on the data, so its fake kernel returns an unbacked size.
Imported by ``_loader`` right after ``torch.ops.load_library`` succeeded, never before: the
``yolactpp::`` schemas must exist first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch._prims_common import suggest_memory_format

__all__: list[str] = []


def _dtype_message(name: str, dtype: torch.dtype, expected: torch.dtype) -> Callable[[], str]:
    return lambda: f"deform_conv2d: {name} has dtype {dtype} but input has {expected}"


@torch.library.register_fake("yolactpp::deform_conv2d")
def _deform_conv2d_fake(
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """[N, C_out, H_out, W_out] in the input's dtype and memory format, like the real kernels.

    Under autocast the C++ autocast kernel has cast every argument before this runs, so the
    result has the autocast dtype here too.
    """
    torch._check(input.dim() == 4 and weight.dim() == 4, lambda: "deform_conv2d: input and weight must be 4-D")
    torch._check(offset.dim() == 4, lambda: "deform_conv2d: offset must be 4-D")
    torch._check(input.shape[1] != 0, lambda: f"deform_conv2d: input has no channels: {list(input.shape)}")
    for name, other in (("offset", offset), ("weight", weight), ("bias", bias), ("mask", mask)):
        if other is not None:  # torch._check raises RuntimeError, as the kernels do
            torch._check(other.dtype == input.dtype, _dtype_message(name, other.dtype, input.dtype))
    batch, _, height, width = input.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = (height + 2 * padding[0] - (dilation[0] * (kernel_h - 1) + 1)) // stride[0] + 1
    out_w = (width + 2 * padding[1] - (dilation[1] * (kernel_w - 1) + 1)) // stride[1] + 1
    torch._check(
        offset.shape[2] == out_h and offset.shape[3] == out_w,
        lambda: f"deform_conv2d: offset must be [N, *, {out_h}, {out_w}], got {list(offset.shape)}",
    )
    fmt = torch.channels_last if suggest_memory_format(input) == torch.channels_last else torch.contiguous_format
    return input.new_empty((batch, out_channels, out_h, out_w)).contiguous(memory_format=fmt)


@torch.library.register_fake("yolactpp::deform_conv2d_backward")
def _deform_conv2d_backward_fake(
    grad: torch.Tensor,
    input: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    mask: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    has_bias: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients shaped as the forward's arguments: input and weight keep their memory format,
    offset and mask come back contiguous; bias [C_out] (empty [0] without a bias), mask empty [0]
    without a mask."""
    torch._check(
        grad.dtype == input.dtype, lambda: f"deform_conv2d_backward: grad is {grad.dtype} but input is {input.dtype}"
    )

    def like(t: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if suggest_memory_format(t) == torch.channels_last else torch.contiguous_format
        return t.new_empty(t.shape).contiguous(memory_format=fmt)

    grad_bias = input.new_empty((weight.shape[0] if has_bias else 0,))
    grad_mask = mask.new_empty(mask.shape) if mask is not None else input.new_empty((0,))
    return like(input), offset.new_empty(offset.shape), like(weight), grad_bias, grad_mask


@torch.library.register_fake("yolactpp::fast_nms")
def _fast_nms_fake(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float,
    top_k: int,
    max_detections: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three tensors of one data-dependent length n <= max_detections."""
    torch._check(boxes.dim() == 2 and scores.dim() == 2, lambda: "fast_nms: boxes [K, 4] and scores [C, K] expected")
    n = torch.library.get_ctx().new_dynamic_size(min=0, max=max_detections)
    index = boxes.new_empty((n,), dtype=torch.int64)
    return index, index.new_empty((n,)), scores.new_empty((n,))
