"""Per-anchor box, class and mask-coefficient predictions, shared across FPN levels."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PredictionHead"]


def _flatten(x: torch.Tensor, per_anchor: int) -> torch.Tensor:
    # NCHW -> [N, H*W*A, k]: index = (row * W + col) * A + anchor, channel = anchor * k + component.
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, per_anchor)


class PredictionHead(nn.Module):
    """A 3x3 conv + ReLU ("upfeature"), then three 3x3 convs for boxes, classes and coefficients.

    ``conf`` holds ``num_classes + 1`` logits per anchor (background first); coefficients pass
    through tanh.
    """

    def __init__(self, channels: int, anchors_per_location: int, num_classes: int, mask_dim: int) -> None:
        super().__init__()
        a = anchors_per_location
        self.num_logits = num_classes + 1
        self.mask_dim = mask_dim
        self.upfeature = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))
        self.bbox_layer = nn.Conv2d(channels, a * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, a * self.num_logits, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, a * mask_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = self.upfeature(x)
        loc = _flatten(self.bbox_layer(y), 4)
        conf = _flatten(self.conf_layer(y), self.num_logits)
        coef = torch.tanh(_flatten(self.mask_layer(y), self.mask_dim))
        return loc, conf, coef
