"""Immutable, typed model configuration.

A :class:`ModelConfig` fully describes one network: backbone, input preprocessing, anchors, heads,
detection thresholds and class names. Configs are frozen dataclasses; derive variants with
:func:`dataclasses.replace` instead of mutating anything global. Every config checks its values
when it is built (in code, from ``config.json`` or by a plugin): a bad one raises
:class:`ConfigError` naming its path, e.g. ``preprocess.size: must be a positive int, got 0``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

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


#: Version of the ``config.json`` schema written by :meth:`ModelConfig.to_dict`.
CONFIG_FORMAT_VERSION = 1


class ConfigError(YolactppError, ValueError):
    """A config value a network cannot be built with; the message starts with the value's path."""


def _fail(path: str, requirement: str, value: Any) -> NoReturn:
    raise ConfigError(f"{path}: must be {requirement}, got {value!r}")


#: Upper bounds of the values that size allocations: far above every released model (input 700,
#: 256 channels, top-k 200), far below what makes one prediction ask for gigabytes.
MAX_INPUT_SIZE = 2048
MAX_CHANNELS = 4096
MAX_TOP_K = 2000  # FastNMS builds a [classes, top_k, top_k] IoU matrix
MAX_DETECTIONS = 10000
MAX_LAYERS = 64


def _int(path: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    requirement = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if maximum is not None:
        requirement = f"an int from {minimum} to {maximum}"
    if isinstance(value, bool):
        _fail(path, requirement, value)
    try:
        number = operator.index(value)
    except TypeError:
        _fail(path, requirement, value)
    if number < minimum or (maximum is not None and number > maximum):
        _fail(path, requirement, value)
    return number


def _number(path: str, value: Any, *, positive: bool = False) -> float:
    requirement = "a positive number" if positive else "a finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        _fail(path, requirement, value)
    if positive and value <= 0:
        _fail(path, requirement, value)
    return float(value)


def _sequence(path: str, value: Any, *, allow_empty: bool = True) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        _fail(path, "a list", value)
    items = tuple(value)
    if not items and not allow_empty:
        _fail(path, "a non-empty list", value)
    return items


def _set(config: Any, **values: Any) -> None:
    """Store normalized values (ints, floats, tuples) on a frozen config."""
    for name, value in values.items():
        object.__setattr__(config, name, value)


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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail("backbone.name", "a registered backbone name", self.name)
        dcn = _sequence("backbone.dcn_layers", self.dcn_layers)
        selected = _sequence("backbone.selected_layers", self.selected_layers, allow_empty=False)
        _set(
            self,
            dcn_layers=tuple(_int(f"backbone.dcn_layers[{i}]", v, 0, MAX_LAYERS) for i, v in enumerate(dcn)),
            dcn_interval=_int("backbone.dcn_interval", self.dcn_interval, 1, MAX_LAYERS),
            selected_layers=tuple(
                _int(f"backbone.selected_layers[{i}]", v, 0, MAX_LAYERS) for i, v in enumerate(selected)
            ),
        )


@dataclass(frozen=True)
class PreprocessConfig:
    """How an RGB uint8 image becomes the network input.

    The image is resized (bilinear, no aspect preservation) to ``size`` x ``size``; then, if
    ``mean``/``std`` are given, normalized per RGB channel, else divided by 255.
    """

    size: int = 550
    mean: tuple[float, float, float] | None = (123.68, 116.78, 103.94)
    std: tuple[float, float, float] | None = (58.40, 57.12, 57.38)

    def __post_init__(self) -> None:
        _set(self, size=_int("preprocess.size", self.size, 1, MAX_INPUT_SIZE))
        for name, positive in (("mean", False), ("std", True)):
            value = getattr(self, name)
            if value is None:
                continue
            items = _sequence(f"preprocess.{name}", value)
            if len(items) != 3:
                _fail(f"preprocess.{name}", "3 numbers (R, G, B) or null", value)
            path = f"preprocess.{name}"
            _set(self, **{name: tuple(_number(f"{path}[{i}]", v, positive=positive) for i, v in enumerate(items))})
        if (self.mean is None) != (self.std is None):
            raise ConfigError("preprocess.mean, preprocess.std: must both be given or both be null")


@dataclass(frozen=True)
class AnchorConfig:
    """Anchor (prior) layout: pixel scales per FPN level, aspect ratios per location."""

    scales: tuple[tuple[float, ...], ...] = ((24.0,), (48.0,), (96.0,), (192.0,), (384.0,))
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    #: The original v1 models overwrite each anchor's height with its width (a kept bug).
    square: bool = True

    def __post_init__(self) -> None:
        levels = _sequence("anchors.scales", self.scales, allow_empty=False)
        scales = tuple(
            tuple(
                _number(f"anchors.scales[{i}][{j}]", s, positive=True)
                for j, s in enumerate(_sequence(f"anchors.scales[{i}]", level, allow_empty=False))
            )
            for i, level in enumerate(levels)
        )
        if len({len(level) for level in scales}) != 1:
            _fail("anchors.scales", "the same number of scales on every FPN level", self.scales)
        ratios = _sequence("anchors.aspect_ratios", self.aspect_ratios, allow_empty=False)
        if len(scales[0]) * len(ratios) > MAX_LAYERS:  # anchors per location size every head output
            _fail("anchors", f"at most {MAX_LAYERS} anchors per location (scales x aspect_ratios)", len(scales[0]) * len(ratios))
        if not isinstance(self.square, bool):
            _fail("anchors.square", "true or false", self.square)
        _set(
            self,
            scales=scales,
            aspect_ratios=tuple(_number(f"anchors.aspect_ratios[{i}]", r, positive=True) for i, r in enumerate(ratios)),
        )

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

    def __post_init__(self) -> None:
        conf = _number("detect.conf_threshold", self.conf_threshold)
        if not 0.0 <= conf < 1.0:
            _fail("detect.conf_threshold", "in [0, 1)", self.conf_threshold)
        iou = _number("detect.iou_threshold", self.iou_threshold)
        if not 0.0 < iou <= 1.0:
            _fail("detect.iou_threshold", "in (0, 1]", self.iou_threshold)
        _set(
            self,
            conf_threshold=conf,
            iou_threshold=iou,
            top_k=_int("detect.top_k", self.top_k, 1, MAX_TOP_K),
            max_detections=_int("detect.max_detections", self.max_detections, 0, MAX_DETECTIONS),
        )


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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            _fail("name", "a non-empty string", self.name)
        for name, kind in (
            ("backbone", BackboneConfig),
            ("preprocess", PreprocessConfig),
            ("anchors", AnchorConfig),
            ("detect", DetectConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                _fail(name, f"a {kind.__name__}", getattr(self, name))
        names = _sequence("class_names", self.class_names, allow_empty=False)
        for i, class_name in enumerate(names):
            if not isinstance(class_name, str) or not class_name.strip():
                _fail(f"class_names[{i}]", "a non-empty string", class_name)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"class_names: must be unique, got {', '.join(map(repr, duplicates))} more than once")
        channels = _sequence("maskiou_channels", self.maskiou_channels)
        _set(
            self,
            class_names=names,
            fpn_channels=_int("fpn_channels", self.fpn_channels, 1, MAX_CHANNELS),
            num_downsample=_int("num_downsample", self.num_downsample, 0, MAX_LAYERS),
            mask_dim=_int("mask_dim", self.mask_dim, 1, MAX_CHANNELS),
            maskiou_channels=tuple(
                _int(f"maskiou_channels[{i}]", c, 1, MAX_CHANNELS) for i, c in enumerate(channels)
            ),
        )
        levels = len(self.backbone.selected_layers) + self.num_downsample
        if len(self.anchors.scales) != levels:
            raise ConfigError(
                f"anchors.scales: must have one entry per FPN level ({levels} = "
                f"{len(self.backbone.selected_layers)} backbone.selected_layers + {self.num_downsample} num_downsample), "
                f"got {len(self.anchors.scales)}"
            )

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
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; rejects unknown fields with a clear error."""
        data = dict(data)
        version = data.pop("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(f"format_version: unsupported {version!r} (expected {CONFIG_FORMAT_VERSION})")
        return _from_mapping(cls, data, "")


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _from_mapping(cls: type, data: Mapping[str, Any], where: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown field(s) {unknown} for {cls.__name__}")
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
                raise ConfigError(f"{name}: must be an object, got {type(value).__name__}")
            kwargs[name] = _from_mapping(nested[name], value, name)
        else:
            kwargs[name] = _freeze(value)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a missing required field
        raise ConfigError(f"{where or 'config'}: {exc}") from None
