"""``LossConfig``: every setting the training losses read, with the original's values per model."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError
from yolactpp.registry import as_model_config

__all__ = ["LossConfig"]


def _number(name: str, value: Any, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidArgumentError(f"LossConfig.{name} must be a finite number, got {value!r}")
    if not low <= float(value) <= high:
        bounds = f"in [{low}, {high}]" if math.isfinite(high) else f">= {low}"
        raise InvalidArgumentError(f"LossConfig.{name} must be {bounds}, got {value!r}")
    return float(value)


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise InvalidArgumentError(f"LossConfig.{name} must be an int >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LossConfig:
    """Settings of :func:`~yolactpp.train.loss.compute_losses`; defaults are the original's
    ``yolact_base`` values (``data/config.py`` at dbolya/yolact 902073d).

    Matching: a prior whose best IoU with a ground-truth box is ``>= positive_iou_threshold`` is
    positive, ``< negative_iou_threshold`` negative, in between neutral; a non-positive prior
    covered by a crowd box (intersection over the prior's area) ``> crowd_iou_threshold`` is
    neutral (``1`` turns crowd handling off, as in the original). Each ground truth is also
    forced onto its best prior. The box-coding variances are fixed (see
    :data:`yolactpp.detect.BOX_VARIANCES`) because inference decodes with the same ones.

    Terms: ``B`` smooth-L1 box loss x ``bbox_alpha``; ``C`` softmax cross-entropy over the
    positives and the hardest negatives (``ohem_negpos_ratio`` per positive) x ``conf_alpha``;
    ``M`` cropped per-pixel BCE of at most ``masks_to_train`` positives per image (sampled at
    random beyond that) x ``mask_alpha``, each mask's sum divided by its box area in prototype
    pixels when ``normalize_mask_by_box_area``; ``S`` per-class BCE of the semantic-segmentation
    logits x ``semantic_segmentation_alpha``; ``I`` (YOLACT++, ``use_maskiou``) smooth-L1 of the
    re-scoring net's IoU against the binarised mask's true IoU x ``maskiou_alpha``, for masks
    whose ground truth covers more than ``discard_mask_area`` prototype pixels (``<= 0``: all).
    """

    positive_iou_threshold: float = 0.5
    negative_iou_threshold: float = 0.4
    crowd_iou_threshold: float = 0.7
    ohem_negpos_ratio: int = 3
    conf_alpha: float = 1.0
    bbox_alpha: float = 1.5
    mask_alpha: float = 6.125
    semantic_segmentation_alpha: float = 1.0
    maskiou_alpha: float = 25.0
    masks_to_train: int = 100
    normalize_mask_by_box_area: bool = True
    use_maskiou: bool = False
    discard_mask_area: float = -1.0

    def __post_init__(self) -> None:
        values: dict[str, Any] = {
            "positive_iou_threshold": _number("positive_iou_threshold", self.positive_iou_threshold, 0.0, 1.0),
            "negative_iou_threshold": _number("negative_iou_threshold", self.negative_iou_threshold, 0.0, 1.0),
            "crowd_iou_threshold": _number("crowd_iou_threshold", self.crowd_iou_threshold, 0.0, 1.0),
            "ohem_negpos_ratio": _count("ohem_negpos_ratio", self.ohem_negpos_ratio, 0),
            "masks_to_train": _count("masks_to_train", self.masks_to_train, 1),
            "discard_mask_area": _number("discard_mask_area", self.discard_mask_area, -math.inf),
        }
        for name in ("conf_alpha", "bbox_alpha", "mask_alpha", "semantic_segmentation_alpha", "maskiou_alpha"):
            values[name] = _number(name, getattr(self, name), 0.0)
        for name in ("normalize_mask_by_box_area", "use_maskiou"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"LossConfig.{name} must be True or False, got {getattr(self, name)!r}")
        if values["negative_iou_threshold"] > values["positive_iou_threshold"]:
            raise InvalidArgumentError(
                "LossConfig.negative_iou_threshold must not exceed positive_iou_threshold, got "
                f"{self.negative_iou_threshold} > {self.positive_iou_threshold}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def for_model(cls, model_config: ModelConfig | str) -> LossConfig:
        """The original's loss settings for a model (a :class:`ModelConfig` or a registered name).

        Every zoo config inherits ``yolact_base``'s values; ``yolact_im700`` trains up to 300
        masks per image instead of 100; YOLACT++ models (those with a mask re-scoring net) add the
        mask-IoU loss (alpha 25) and skip ground-truth masks of at most 25 prototype pixels in it.
        A fine-tuned model keeps the settings of the model it started from (same name, same
        re-scoring net).
        """
        config = as_model_config(model_config)
        if config is None:
            raise InvalidArgumentTypeError("LossConfig.for_model needs a ModelConfig or a model name, got None")
        plus = config.use_maskiou
        return cls(
            masks_to_train=300 if config.name == "yolact_im700" else 100,
            use_maskiou=plus,
            maskiou_alpha=25.0 if plus else 1.0,
            discard_mask_area=25.0 if plus else -1.0,
        )
