"""Per-anchor box, class and mask-coefficient predictions, shared across FPN levels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
        loc = _flatten(_predict(self.bbox_layer, y), 4)
        conf = _flatten(_predict(self.conf_layer, y), self.num_logits)
        coef = torch.tanh(_flatten(_predict(self.mask_layer, y), self.mask_dim))
        return loc, conf, coef


def _predict(conv: nn.Conv2d, y: torch.Tensor) -> torch.Tensor:
    """The conv; in half precision its bias is added in float32 after it.

    Class logits carry large biases (the background logit sits near +13 in trained models), so a
    bfloat16 output would round them by ~0.03, a few percent of every foreground probability;
    the bias-free conv output is small and keeps its precision.
    """
    if y.dtype not in (torch.bfloat16, torch.float16) or conv.bias is None:
        return conv(y)
    out = F.conv2d(y, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return out.float() + conv.bias.float().view(1, -1, 1, 1)
