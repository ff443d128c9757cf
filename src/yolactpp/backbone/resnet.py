"""ResNet-50/101 with optional deformable 3x3 convolutions (the YOLACT / YOLACT++ backbones)."""

from __future__ import annotations

import torch
from torch import nn

from yolactpp.backbone.base import Backbone
from yolactpp.backbone.dcn import ModulatedDeformConv2d
from yolactpp.backbone.fold import conv_bn
from yolactpp.config import BackboneConfig, ConfigError
from yolactpp.registry import register_backbone

__all__ = ["Bottleneck", "ResNet", "dcn_blocks"]


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv), optionally with a DCNv2 3x3 conv."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, use_dcn: bool = False) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2: nn.Module
        if use_dcn:
            self.conv2 = ModulatedDeformConv2d(planes, planes, 3, stride=stride, padding=1)
        else:
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(conv_bn(self.conv1, self.bn1, x))
        out = self.relu(conv_bn(self.conv2, self.bn2, out))
        out = conv_bn(self.conv3, self.bn3, out)
        identity = x if self.downsample is None else conv_bn(self.downsample[0], self.downsample[1], x)
        return self.relu(out + identity)


def dcn_blocks(num_blocks: int, dcn_layers: int, interval: int) -> list[bool]:
    """Which blocks of a stage use DCN, by the original placement rule.

    The last ``dcn_layers`` blocks are candidates; of those, block ``i >= 1`` is kept only when
    ``i % interval == 0``. Block 0 ignores the interval (a quirk of the original).
    """
    flags = []
    for i in range(num_blocks):
        if i == 0:
            flags.append(dcn_layers >= num_blocks)
        else:
            flags.append(i + dcn_layers >= num_blocks and i % interval == 0)
    return flags


class ResNet(Backbone):
    """ResNet trunk returning the four stage outputs (C2..C5); no pooling or classifier."""

    def __init__(
        self,
        blocks_per_stage: tuple[int, ...],
        dcn_layers: tuple[int, ...] = (),
        dcn_interval: int = 1,
    ) -> None:
        super().__init__()
        dcn_layers = tuple(dcn_layers) or (0,) * len(blocks_per_stage)
        if len(dcn_layers) != len(blocks_per_stage):
            raise ConfigError(
                f"dcn_layers has {len(dcn_layers)} entries but the ResNet has {len(blocks_per_stage)} stages"
            )
        if dcn_interval < 1:
            raise ConfigError(f"dcn_interval must be >= 1, got {dcn_interval}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        channels = []
        in_channels = 64
        for stage, (num_blocks, num_dcn) in enumerate(zip(blocks_per_stage, dcn_layers)):
            planes = 64 * 2**stage
            stride = 1 if stage == 0 else 2
            use_dcn = dcn_blocks(num_blocks, num_dcn, dcn_interval)
            stage_blocks = []
            for i in range(num_blocks):
                stage_blocks.append(Bottleneck(in_channels, planes, stride if i == 0 else 1, use_dcn[i]))
                in_channels = planes * Bottleneck.expansion
            self.layers.append(nn.Sequential(*stage_blocks))
            channels.append(in_channels)
        self.channels = tuple(channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(conv_bn(self.conv1, self.bn1, x)))
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return tuple(outs)


@register_backbone("resnet50")
def resnet50(cfg: BackboneConfig) -> ResNet:
    """ResNet-50 ([3, 4, 6, 3] bottlenecks); DCN placement from ``cfg``."""
    return ResNet((3, 4, 6, 3), cfg.dcn_layers, cfg.dcn_interval)


@register_backbone("resnet101")
def resnet101(cfg: BackboneConfig) -> ResNet:
    """ResNet-101 ([3, 4, 23, 3] bottlenecks); DCN placement from ``cfg``."""
    return ResNet((3, 4, 23, 3), cfg.dcn_layers, cfg.dcn_interval)
