"""yolactpp: YOLACT / YOLACT++ real-time instance segmentation, pip-installable.

>>> from yolactpp import YolactPP
>>> model = YolactPP.from_pretrained("yolact_plus_resnet50")   # doctest: +SKIP
>>> detections = model.predict("image.jpg")                      # doctest: +SKIP
>>> from yolactpp import load
>>> exported = load("model.onnx")   # any model: checkpoint, folder, zoo name, .onnx, .pt2   # doctest: +SKIP

Importing the package is cheap and side-effect free: submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from yolactpp._version import __version__

_EXPORTS = {
    "YolactPP": "yolactpp.model",
    "Detections": "yolactpp.results",
    "PredictOptions": "yolactpp.predict_options",
    "TrainOptions": "yolactpp.train.options",
    "ModelConfig": "yolactpp.config",
    "BackboneConfig": "yolactpp.config",
    "PreprocessConfig": "yolactpp.config",
    "AnchorConfig": "yolactpp.config",
    "DetectConfig": "yolactpp.config",
    "list_models": "yolactpp.registry",
    "get_model_config": "yolactpp.registry",
    "register_model": "yolactpp.registry",
    "register_backbone": "yolactpp.registry",
    "list_backbones": "yolactpp.registry",
    "UnknownModelError": "yolactpp.registry",
    "CheckpointError": "yolactpp.checkpoint",
    "YolactppError": "yolactpp.errors",
    "YolactppWarning": "yolactpp.errors",
    "PredictionFailure": "yolactpp.errors",
    "InvalidImageError": "yolactpp.preprocess",
    "ImageTooLargeError": "yolactpp.preprocess",
    "ModelBusyError": "yolactpp.concurrency",
    "COCO_CLASSES": "yolactpp.classes",
    "convert": "yolactpp.serialization",
    "load": "yolactpp.loading",
    "Predictor": "yolactpp.predictor",
}

__all__ = [*sorted(_EXPORTS), "__version__"]

if TYPE_CHECKING:
    from yolactpp.checkpoint import CheckpointError
    from yolactpp.classes import COCO_CLASSES
    from yolactpp.concurrency import ModelBusyError
    from yolactpp.config import AnchorConfig, BackboneConfig, DetectConfig, ModelConfig, PreprocessConfig
    from yolactpp.errors import PredictionFailure, YolactppError, YolactppWarning
    from yolactpp.loading import load
    from yolactpp.model import YolactPP
    from yolactpp.predict_options import PredictOptions
    from yolactpp.predictor import Predictor
    from yolactpp.preprocess import ImageTooLargeError, InvalidImageError
    from yolactpp.registry import (
        UnknownModelError,
        get_model_config,
        list_backbones,
        list_models,
        register_backbone,
        register_model,
    )
    from yolactpp.results import Detections
    from yolactpp.serialization import convert
    from yolactpp.train.options import TrainOptions


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'yolactpp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
