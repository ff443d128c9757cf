"""Modulated deformable convolution (DCNv2) layer with the original YOLACT++ parameter layout."""

from __future__ import annotations

import math

import torch
from torch import nn

from yolactpp import ops


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 as the original YOLACT++ uses it: offsets and mask predicted from the input.

    ``conv_offset_mask`` predicts ``3 * k * k`` channels: the first ``2 * k * k`` are the offsets
    (interleaved dy, dx per kernel tap), the last ``k * k`` pass through a sigmoid to become the
    modulation mask. Parameter names match the original checkpoints (``weight``, ``bias``,
    ``conv_offset_mask.*``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        dilation: int = 1,
        offset_groups: int = 1,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.offset_groups = offset_groups
        taps = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv_offset_mask = nn.Conv2d(
            in_channels,
            offset_groups * 3 * taps,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            bias=True,
        )
        self._offset_channels = offset_groups * 2 * taps
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.conv_offset_mask.weight)
        assert self.conv_offset_mask.bias is not None  # built with bias=True
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_params(x, self.weight, self.bias)

    def offsets_and_mask(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampling offsets (interleaved dy, dx per tap) and the sigmoid modulation mask for ``x``."""
        offset_mask = self.conv_offset_mask(x)
        return offset_mask[:, : self._offset_channels], torch.sigmoid(offset_mask[:, self._offset_channels :])

    def forward_with_params(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The layer with another weight/bias (e.g. with a following BatchNorm folded in)."""
        offset, mask = self.offsets_and_mask(x)
        return ops.deform_conv2d(
            x,
            offset,
            weight,
            bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, kernel_size={k}, stride={self.stride}, padding={self.padding}"
