"""DarkNet-53 (YOLOv3's trunk), as used by yolact_darknet53."""

from __future__ import annotations

import torch
from torch import nn

from yolactpp.backbone.base import Backbone
from yolactpp.backbone.fold import conv_bn
from yolactpp.config import BackboneConfig, ConfigError
from yolactpp.registry import register_backbone

__all__ = ["DarkNet", "DarkNetBlock"]


class _ConvBNLeaky(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.1); indices 0/1 match the original checkpoints."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[2](conv_bn(self[0], self[1], x))


class DarkNetBlock(nn.Module):
    """Residual pair: 1x1 (2c -> c) then 3x3 (c -> 2c), added to the input (no activation after)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _ConvBNLeaky(2 * channels, channels, 1)
        self.conv2 = _ConvBNLeaky(channels, 2 * channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class DarkNet(Backbone):
    """DarkNet-53: a stem conv, then five stages of (strided 3x3 conv, residual blocks)."""

    def __init__(self, blocks_per_stage: tuple[int, ...] = (1, 2, 8, 8, 4)) -> None:
        super().__init__()
        self._preconv = _ConvBNLeaky(3, 32, 3)
        self.layers = nn.ModuleList()
        in_channels = 32
        channels = []
        for stage, num_blocks in enumerate(blocks_per_stage):
            width = 32 * 2**stage
            self.layers.append(
                nn.Sequential(
                    _ConvBNLeaky(in_channels, 2 * width, 3, stride=2),
                    *[DarkNetBlock(width) for _ in range(num_blocks)],
                )
            )
            in_channels = 2 * width
            channels.append(in_channels)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self._preconv(x)
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return tuple(outs)


@register_backbone("darknet53")
def darknet53(cfg: BackboneConfig) -> DarkNet:
    """DarkNet-53 ([1, 2, 8, 8, 4] residual blocks); has no DCN option."""
    if any(cfg.dcn_layers):
        raise ConfigError("darknet53 has no deformable-convolution variant; leave dcn_layers empty")
    return DarkNet()
