"""The semantic-segmentation head: a training-only 1x1 conv from P3 to one logit per class.

It is the original's ``semantic_seg_conv``: it adds the semantic-segmentation loss term during
training and is never used for prediction, so it is not part of the saved inference model; the
trainer owns it and keeps its weights in the training state of each checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SemanticHead"]


class SemanticHead(nn.Module):
    """``[B, channels, H, W]`` P3 features -> ``[B, num_classes, H, W]`` logits (no background)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.semantic_seg_conv = nn.Conv2d(channels, num_classes, 1)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        return self.semantic_seg_conv(p3)
