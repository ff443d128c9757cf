"""Immutable, typed model configuration.

A :class:`ModelConfig` fully describes one network: backbone, input preprocessing, anchors, heads,
detection thresholds and class names. Configs are frozen dataclasses; derive variants with
:func:`dataclasses.replace` instead of mutating anything global.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from yolactpp.classes import COCO_CLASSES
from yolactpp.errors import YolactppError

__all__ = [
    "AnchorConfig",
    "BackboneConfig",
    "ConfigError",
    "DetectConfig",
    "ModelConfig",
    "PreprocessConfig",
]

class ConfigError(YolactppError, ValueError):
    """A model configuration that cannot describe a working network (bad field, value or combination)."""


#: Version of the ``config.json`` schema written by :meth:`ModelConfig.to_dict`.
CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class BackboneConfig:
    """Which registered backbone to build and how.

    ``dcn_layers`` gives, per stage, how many of the last blocks use deformable convolution;
    ``dcn_interval`` keeps only every n-th of those (YOLACT++ placement rule).
    """

    name: str
    dcn_layers: tuple[int, ...] = ()
    dcn_interval: int = 1
    #: Backbone stage outputs fed to the FPN (C3, C4, C5).
    selected_layers: tuple[int, ...] = (1, 2, 3)


@dataclass(frozen=True)
class PreprocessConfig:
    """How an RGB uint8 image becomes the network input.

    The image is resized (bilinear, no aspect preservation) to ``size`` x ``size``; then, if
    ``mean``/``std`` are given, normalized per RGB channel, else divided by 255.
    """

    size: int = 550
    mean: tuple[float, float, float] | None = (123.68, 116.78, 103.94)
    std: tuple[float, float, float] | None = (58.40, 57.12, 57.38)


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor (prior) layout: pixel scales per FPN level, aspect ratios per location."""

    scales: tuple[tuple[float, ...], ...] = ((24.0,), (48.0,), (96.0,), (192.0,), (384.0,))
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    #: The original v1 models overwrite each anchor's height with its width (a kept bug).
    square: bool = True

    @property
    def per_location(self) -> int:
        counts = {len(level) for level in self.scales}
        if len(counts) != 1:
            raise ConfigError("every FPN level must have the same number of anchor scales")
        return counts.pop() * len(self.aspect_ratios)


@dataclass(frozen=True)
class DetectConfig:
    """Detection defaults: pre-NMS confidence filter, FastNMS IoU, per-class top-k, final cap."""

    conf_threshold: float = 0.05
    iou_threshold: float = 0.5
    top_k: int = 200
    max_detections: int = 100


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build one YOLACT / YOLACT++ network."""

    name: str
    backbone: BackboneConfig
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    anchors: AnchorConfig = field(default_factory=AnchorConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    class_names: tuple[str, ...] = COCO_CLASSES
    fpn_channels: int = 256
    num_downsample: int = 2
    mask_dim: int = 32
    #: YOLACT++ mask re-scoring network; ``()`` disables it.
    maskiou_channels: tuple[int, ...] = ()

    @property
    def num_classes(self) -> int:
        """Number of foreground classes (the network adds one background logit)."""
        return len(self.class_names)

    @property
    def use_maskiou(self) -> bool:
        return len(self.maskiou_channels) > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["format_version"] = CONFIG_FORMAT_VERSION
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of :meth:`to_dict`; rejects unknown fields with a clear error."""
        data = dict(data)
        version = data.pop("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(f"unsupported config format_version {version!r} (expected {CONFIG_FORMAT_VERSION})")
        return _from_mapping(cls, data, "config")


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _from_mapping(cls: type, data: Mapping[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} for {cls.__name__}")
    kwargs: dict[str, Any] = {}
    nested = {
        "backbone": BackboneConfig,
        "preprocess": PreprocessConfig,
        "anchors": AnchorConfig,
        "detect": DetectConfig,
    }
    for name, value in data.items():
        if name in nested and cls is ModelConfig:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}.{name} must be an object, got {type(value).__name__}")
            kwargs[name] = _from_mapping(nested[name], value, f"{where}.{name}")
        else:
            kwargs[name] = _freeze(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
