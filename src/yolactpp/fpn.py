"""Feature pyramid: C3..C5 -> P3..P7 with 256 channels each."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FPN"]


class FPN(nn.Module):
    """The YOLACT FPN.

    Lateral and prediction convs are stored coarsest-first (index 0 acts on C5 / P5), as in the
    original checkpoints. Top-down upsampling is bilinear to the exact size of the finer map;
    P3..P5 get a ReLU, P6 and P7 are strided convs of the previous level without one.
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int = 256, num_downsample: int = 2) -> None:
        super().__init__()
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in reversed(in_channels))
        self.pred_layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.downsample_layers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(num_downsample)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        n = len(features)
        laterals: list[torch.Tensor] = [features[0]] * n
        x: torch.Tensor | None = None
        for i, lat_layer in enumerate(self.lat_layers):
            j = n - 1 - i
            lateral = lat_layer(features[j])
            if x is not None:
                x = F.interpolate(x, size=lateral.shape[-2:], mode="bilinear", align_corners=False)
                lateral = x + lateral
            x = lateral
            laterals[j] = x
        outs = [F.relu(pred(laterals[n - 1 - i])) for i, pred in enumerate(self.pred_layers)]
        outs.reverse()
        for down in self.downsample_layers:
            outs.append(down(outs[-1]))
        return outs
