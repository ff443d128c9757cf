"""The six released YOLACT / YOLACT++ models (configs of dbolya/yolact, release 1.2)."""

from __future__ import annotations

from yolactpp.config import AnchorConfig, BackboneConfig, ModelConfig, PreprocessConfig
from yolactpp.registry import register_model

__all__ = [
    "yolact_base",
    "yolact_darknet53",
    "yolact_im700",
    "yolact_plus_base",
    "yolact_plus_resnet50",
    "yolact_resnet50",
]

_BASE_SCALES = (24, 48, 96, 192, 384)
_DARKNET_PREPROCESS = PreprocessConfig(size=550, mean=None, std=None)
#: YOLACT++ uses three scales per level, s * 2^(j/3), with real (non-square) aspect ratios.
_PLUS_ANCHORS = AnchorConfig(
    scales=tuple(tuple(s * 2 ** (j / 3.0) for j in range(3)) for s in _BASE_SCALES),
    square=False,
)
_MASKIOU_CHANNELS = (8, 16, 32, 64, 128)


@register_model
def yolact_base() -> ModelConfig:
    """YOLACT, ResNet-101-FPN, 550 px."""
    return ModelConfig(name="yolact_base", backbone=BackboneConfig("resnet101"))


@register_model
def yolact_im700() -> ModelConfig:
    """YOLACT, ResNet-101-FPN, 700 px (anchor scales grow with the input, truncated to ints)."""
    size = 700
    return ModelConfig(
        name="yolact_im700",
        backbone=BackboneConfig("resnet101"),
        preprocess=PreprocessConfig(size=size),
        anchors=AnchorConfig(scales=tuple((float(int(s / 550 * size)),) for s in _BASE_SCALES)),
    )


@register_model
def yolact_resnet50() -> ModelConfig:
    """YOLACT, ResNet-50-FPN, 550 px."""
    return ModelConfig(name="yolact_resnet50", backbone=BackboneConfig("resnet50"))


@register_model
def yolact_darknet53() -> ModelConfig:
    """YOLACT, DarkNet-53-FPN, 550 px (input scaled to [0, 1], no mean/std)."""
    return ModelConfig(
        name="yolact_darknet53",
        backbone=BackboneConfig("darknet53", selected_layers=(2, 3, 4)),
        preprocess=_DARKNET_PREPROCESS,
    )


@register_model
def yolact_plus_resnet50() -> ModelConfig:
    """YOLACT++, ResNet-50-FPN with DCNv2 in every block of C3-C5, 550 px, mask re-scoring."""
    return ModelConfig(
        name="yolact_plus_resnet50",
        backbone=BackboneConfig("resnet50", dcn_layers=(0, 4, 6, 3), dcn_interval=1),
        anchors=_PLUS_ANCHORS,
        maskiou_channels=_MASKIOU_CHANNELS,
    )


@register_model
def yolact_plus_base() -> ModelConfig:
    """YOLACT++, ResNet-101-FPN with DCNv2 every third block of C3-C5, 550 px, mask re-scoring."""
    return ModelConfig(
        name="yolact_plus_base",
        backbone=BackboneConfig("resnet101", dcn_layers=(0, 4, 23, 3), dcn_interval=3),
        anchors=_PLUS_ANCHORS,
        maskiou_channels=_MASKIOU_CHANNELS,
    )
