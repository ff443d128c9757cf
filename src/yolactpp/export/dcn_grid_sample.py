"""DCNv2 written with ``grid_sample`` + a 1x1 convolution, for runtimes without ``DeformConv``.

OpenVINO's ONNX reader has no conversion rule for ``DeformConv`` (checked with 2026.4); every
runtime has ``GridSample`` (opset 16). Bilinear sampling with zero padding and
``align_corners=False`` reproduces DCNv2's sampling rule exactly (a tap reads 0 outside
-1 < y < H, -1 < x < W; corners outside count as 0), so the two graphs agree to float rounding.
Used by ``export_onnx(..., deform_conv="grid_sample")``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolactpp.backbone.dcn import ModulatedDeformConv2d
from yolactpp.errors import InvalidArgumentError

__all__ = ["check_contract", "deform_conv2d_grid_sample", "use_grid_sample_dcn"]


def _pair(name: str, value: int | tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise InvalidArgumentError(f"grid_sample DCN: {name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def check_contract(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, mask: torch.Tensor | None) -> None:
    """What the grid_sample form computes: one offset group and one weight group (``groups=1``).
    Anything else raises :class:`InvalidArgumentError` naming the limit, before any tracing."""
    taps = weight.shape[2] * weight.shape[3]
    if weight.shape[1] != x.shape[1]:
        raise InvalidArgumentError(
            f"grid_sample DCN supports one weight group: weight has {weight.shape[1]} input channels for an input "
            f"of {x.shape[1]}; export with deform_conv='DeformConv'"
        )
    if offset.shape[1] != 2 * taps:
        raise InvalidArgumentError(
            f"grid_sample DCN supports one offset group: offset has {offset.shape[1]} channels, expected "
            f"{2 * taps} (2 x {taps} kernel taps); export with deform_conv='DeformConv'"
        )
    if mask is not None and mask.shape[1] != taps:
        raise InvalidArgumentError(f"grid_sample DCN: mask has {mask.shape[1]} channels, expected {taps} (one offset group)")


def deform_conv2d_grid_sample(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int],
    dilation: int | tuple[int, int],
    mask: torch.Tensor | None,
    product_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`torchvision.ops.deform_conv2d` (one offset group, one weight group) via ``grid_sample``.

    As on every other path, a NaN offset makes its tap read zero (the native kernel's rule).
    ``stride`` / ``padding`` / ``dilation`` may differ between height and width; ``mask=None`` is DCNv1.
    ``product_weight``: ``weight`` already reshaped to ``[O, C * taps, 1, 1]`` (a constant in an
    exported graph, which quantizers need), else reshaped here.
    """
    check_contract(x, offset, weight, mask)
    (sy, sx), (py_, px_), (dy, dx) = _pair("stride", stride), _pair("padding", padding), _pair("dilation", dilation)
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    dtype, device = x.dtype, x.device
    ky = (torch.arange(kh, device=device, dtype=dtype) * dy).repeat_interleave(kw)  # tap k = ky * kw + kx
    kx = (torch.arange(kw, device=device, dtype=dtype) * dx).repeat(kh)
    base_y = torch.arange(ho, device=device, dtype=dtype) * sy - py_
    base_x = torch.arange(wo, device=device, dtype=dtype) * sx - px_
    off_y, off_x = offset[:, 0::2], offset[:, 1::2]
    valid = ~(torch.isnan(off_y) | torch.isnan(off_x))  # NaN offset: the tap reads zero
    off_y, off_x = torch.where(valid, off_y, 0.0), torch.where(valid, off_x, 0.0)
    pos_y = base_y.view(1, 1, ho, 1) + ky.view(1, taps, 1, 1) + off_y  # [N, K, Ho, Wo]
    pos_x = base_x.view(1, 1, 1, wo) + kx.view(1, taps, 1, 1) + off_x
    grid = torch.stack([(pos_x + 0.5) * (2.0 / w) - 1.0, (pos_y + 0.5) * (2.0 / h) - 1.0], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(n, taps * ho, wo, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    weights = valid.to(dtype) if mask is None else mask * valid.to(dtype)
    sampled = sampled.view(n, c, taps, ho, wo) * weights.unsqueeze(1)
    # The weight product as a 1x1 convolution over the C x taps sampled channels: every runtime
    # fuses the bias and a following BatchNorm into it, and quantizers treat it as any other Conv.
    if product_weight is None:
        product_weight = weight.reshape(out_c, c * taps, 1, 1)
    return F.conv2d(sampled.reshape(n, c * taps, ho, wo), product_weight, bias)


class _GridSampleDeformConv(ModulatedDeformConv2d):
    def forward_with_params(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        offset, mask = self.offsets_and_mask(x)
        return deform_conv2d_grid_sample(x, offset, weight, bias, self.stride, self.padding, self.dilation, mask)


def use_grid_sample_dcn(network: nn.Module) -> None:
    """Switch every DCN layer of ``network`` (a copy made for export) to the grid_sample form;
    a layer outside its contract (more than one offset group) is named before tracing."""
    for name, module in network.named_modules():
        if type(module) is ModulatedDeformConv2d:
            if module.offset_groups != 1:
                raise InvalidArgumentError(
                    f"{name}: the grid_sample DCN supports one offset group, this layer has {module.offset_groups}; "
                    "export with deform_conv='DeformConv'"
                )
            module.__class__ = _GridSampleDeformConv
