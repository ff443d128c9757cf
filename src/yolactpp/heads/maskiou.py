"""YOLACT++ mask re-scoring: predicts each mask's IoU with its object, per class."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MaskIoUNet"]


class MaskIoUNet(nn.Module):
    """Strided 3x3 convs (no padding) then a 1x1 conv to one IoU per class, each with a ReLU,
    global max-pooled. Input: soft cropped masks ``[N, 1, Hp, Wp]``; output ``[N, num_classes]``.
    """

    def __init__(self, channels: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_c = 1
        for c in channels:
            layers += [nn.Conv2d(in_c, c, 3, stride=2), nn.ReLU(inplace=True)]
            in_c = c
        layers += [nn.Conv2d(in_c, num_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        # Runs in the parameters' dtype (e.g. bfloat16), answers in the masks' dtype.
        first = self.maskiou_net[0]
        assert isinstance(first, nn.Conv2d)
        x = self.maskiou_net(masks.to(first.weight.dtype))
        return x.amax(dim=(2, 3)).to(masks.dtype)
