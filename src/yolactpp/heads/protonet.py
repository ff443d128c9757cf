"""Prototype network: P3 -> 32 prototype masks at twice P3's resolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ProtoNet"]


class _Upsample2x(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class ProtoNet(nn.Sequential):
    """Three 3x3 convs, 2x bilinear upsampling, a 3x3 conv and a 1x1 conv to ``mask_dim``.

    Layer indices (0, 2, 4, 8, 10 hold weights) match the original checkpoints. Every conv,
    the upsampling and the final projection are followed by a ReLU.
    """

    def __init__(self, in_channels: int = 256, mask_dim: int = 32) -> None:
        c = in_channels
        super().__init__(
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            _Upsample2x(), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, mask_dim, 1), nn.ReLU(inplace=True),
        )  # fmt: skip
