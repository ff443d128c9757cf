"""``PredictOptions``: the one description of how a prediction is run, shared by every entry point.

``YolactPP.predict`` / ``iter_predict``, the CLI, the Ray ``Predictor`` and an exported-model
predictor all take the same frozen object (keyword arguments are a convenience that builds one).
It checks its values when built, so a bad option fails before any image is read, and it imports
no torch: class names are matched against a model's names only when it is resolved for that model.
"""

from __future__ import annotations

import dataclasses
import numbers
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from typing_extensions import Self

from yolactpp.classes import resolve_class_ids
from yolactpp.config import MAX_DETECTIONS, MAX_TOP_K, DetectConfig
from yolactpp.errors import YolactppError

__all__ = ["InvalidOptionError", "OptionTypeError", "PredictOptions", "ResolvedOptions"]


class InvalidOptionError(YolactppError, ValueError):
    """A prediction option with a value outside its range (or of the wrong type)."""


class OptionTypeError(YolactppError, TypeError):
    """A keyword that is not a prediction option, or options that are not a :class:`PredictOptions`."""


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidOptionError(f"{name} must be a number, got {type(value).__name__}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidOptionError(f"{name} must be an integer, got {value!r}") from None


def _classes(value: Any) -> tuple[str | int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        raise InvalidOptionError(f"classes must be names (str) or 0-based ids, got bytes {value!r}; decode it first")
    items = [value] if isinstance(value, (str, numbers.Integral)) else value
    if not isinstance(items, Iterable):
        raise InvalidOptionError(f"classes must be names or 0-based ids, got {type(value).__name__}")
    out: list[str | int] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
            continue
        if isinstance(item, (bytes, bytearray)):
            raise InvalidOptionError(f"classes must be names (str) or 0-based ids, got bytes {item!r}; decode it first")
        index = _integer("classes", item)
        if index < 0:
            raise InvalidOptionError(f"classes: ids are 0-based and >= 0, got {index}")
        out.append(index)
    if not out:
        raise InvalidOptionError("classes is empty: pass None to keep every class")
    return tuple(out)


class OptionsBuilder:
    """``build`` and ``names`` for the frozen option dataclasses (:class:`PredictOptions`,
    ``TrainOptions``); ``_KIND`` names them in errors ("prediction", "training")."""

    _KIND = "model"

    @classmethod
    def build(cls, options: Self | None = None, **overrides: Any) -> Self:
        """``options`` (or the defaults) with ``overrides`` applied; unknown keywords are named."""
        if options is not None and not isinstance(options, cls):
            raise OptionTypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise OptionTypeError(f"unknown {cls._KIND} option(s) {unknown}; valid: {list(cls.names())}")
        if options is None:
            return cls(**overrides)
        return dataclasses.replace(options, **overrides) if overrides else options  # type: ignore[type-var]

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]


@dataclass(frozen=True)
class ResolvedOptions:
    """:class:`PredictOptions` applied to one model: every threshold filled in, classes as label ids."""

    settings: DetectConfig
    score_threshold: float
    class_ids: tuple[int, ...] | None


@dataclass(frozen=True)
class PredictOptions(OptionsBuilder):
    """How to turn network outputs into detections; every field is checked when the object is built.

    ``score_threshold`` keeps detections whose final score is strictly above it (0 keeps all).
    ``top_k`` (per-class candidates for NMS), ``conf_threshold`` (pre-NMS filter, in [0, 1)),
    ``iou_threshold`` (NMS overlap, in (0, 1]) and ``max_detections`` (final cap) default to the
    model config when ``None``. ``classes`` (names and/or 0-based ids) restricts detection to those
    classes before NMS and the cap; names are matched against the model's when the options are used.
    """

    _KIND = "prediction"

    score_threshold: float = 0.0
    top_k: int | None = None
    conf_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None
    #: Names and/or ids; any iterable (or one name or id) is accepted and stored as a tuple.
    classes: str | int | Iterable[str | int] | None = None

    def __post_init__(self) -> None:
        score = _real("score_threshold", self.score_threshold)
        if not 0 <= score <= 1:  # scores are probabilities: above 1 nothing would ever be kept
            raise InvalidOptionError(f"score_threshold must be between 0 and 1, got {self.score_threshold}")
        values: dict[str, Any] = {"score_threshold": score, "classes": _classes(self.classes)}
        if self.top_k is not None:
            values["top_k"] = _integer("top_k", self.top_k)
            if not 1 <= values["top_k"] <= MAX_TOP_K:
                raise InvalidOptionError(f"top_k must be from 1 to {MAX_TOP_K}, got {values['top_k']}")
        if self.max_detections is not None:
            values["max_detections"] = _integer("max_detections", self.max_detections)
            if not 0 <= values["max_detections"] <= MAX_DETECTIONS:
                raise InvalidOptionError(
                    f"max_detections must be from 0 to {MAX_DETECTIONS}, got {values['max_detections']}"
                )
        if self.conf_threshold is not None:
            values["conf_threshold"] = _real("conf_threshold", self.conf_threshold)
            if not 0.0 <= values["conf_threshold"] < 1.0:
                raise InvalidOptionError(f"conf_threshold must be in [0, 1), got {self.conf_threshold}")
        if self.iou_threshold is not None:
            values["iou_threshold"] = _real("iou_threshold", self.iou_threshold)
            if not 0.0 < values["iou_threshold"] <= 1.0:
                raise InvalidOptionError(f"iou_threshold must be in (0, 1], got {self.iou_threshold}")
        for name, value in values.items():  # normalized forms (ints, floats, a tuple of classes)
            object.__setattr__(self, name, value)

    def resolve(self, defaults: DetectConfig, class_names: Sequence[str]) -> ResolvedOptions:
        """Fill unset thresholds from a model's ``defaults``; turn ``classes`` into label ids of
        ``class_names`` (unknown names raise ``ValueError`` listing the valid ones)."""
        settings = DetectConfig(
            conf_threshold=defaults.conf_threshold if self.conf_threshold is None else self.conf_threshold,
            iou_threshold=defaults.iou_threshold if self.iou_threshold is None else self.iou_threshold,
            top_k=defaults.top_k if self.top_k is None else self.top_k,
            max_detections=defaults.max_detections if self.max_detections is None else self.max_detections,
        )
        class_ids = None if self.classes is None else tuple(resolve_class_ids(self.classes, class_names))
        return ResolvedOptions(settings, self.score_threshold, class_ids)
