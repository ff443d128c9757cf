"""DCNv2 written with ``grid_sample`` + a matrix product, for runtimes without ``DeformConv``.

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

__all__ = ["deform_conv2d_grid_sample", "use_grid_sample_dcn"]


def deform_conv2d_grid_sample(
    x: torch.Tensor,
    offset: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    padding: int,
    dilation: int,
    mask: torch.Tensor,
) -> torch.Tensor:
    """:func:`torchvision.ops.deform_conv2d` (one offset group, one weight group) via ``grid_sample``."""
    n, c, h, w = x.shape
    out_c, _, kh, kw = weight.shape
    ho, wo = offset.shape[-2:]
    taps = kh * kw
    dtype, device = x.dtype, x.device
    ky = (torch.arange(kh, device=device, dtype=dtype) * dilation).repeat_interleave(kw)  # tap k = ky * kw + kx
    kx = (torch.arange(kw, device=device, dtype=dtype) * dilation).repeat(kh)
    base_y = torch.arange(ho, device=device, dtype=dtype) * stride - padding
    base_x = torch.arange(wo, device=device, dtype=dtype) * stride - padding
    py = base_y.view(1, 1, ho, 1) + ky.view(1, taps, 1, 1) + offset[:, 0::2]  # [N, K, Ho, Wo]
    px = base_x.view(1, 1, 1, wo) + kx.view(1, taps, 1, 1) + offset[:, 1::2]
    grid = torch.stack([(px + 0.5) * (2.0 / w) - 1.0, (py + 0.5) * (2.0 / h) - 1.0], dim=-1)
    sampled = F.grid_sample(
        x, grid.view(n, taps * ho, wo, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )
    sampled = sampled.view(n, c, taps, ho, wo) * mask.unsqueeze(1)
    out = torch.matmul(weight.reshape(out_c, c * taps), sampled.reshape(n, c * taps, ho * wo))
    out = out.view(n, out_c, ho, wo)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


class _GridSampleDeformConv(ModulatedDeformConv2d):
    def forward_with_params(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.offset_groups != 1:
            raise InvalidArgumentError("the grid_sample DCN supports one offset group")
        offset_mask = self.conv_offset_mask(x)
        offset = offset_mask[:, : self._offset_channels]
        mask = torch.sigmoid(offset_mask[:, self._offset_channels :])
        return deform_conv2d_grid_sample(x, offset, weight, bias, self.stride, self.padding, self.dilation, mask)


def use_grid_sample_dcn(network: nn.Module) -> None:
    """Switch every DCN layer of ``network`` (a copy made for export) to the grid_sample form."""
    for module in network.modules():
        if type(module) is ModulatedDeformConv2d:
            module.__class__ = _GridSampleDeformConv
