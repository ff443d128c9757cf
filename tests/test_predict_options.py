"""PredictOptions: one validated object for every prediction entry point."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from yolactpp import PredictOptions, YolactppError
from yolactpp.config import DetectConfig
from yolactpp.predict_options import InvalidOptionError


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"score_threshold": float("nan")}, "score_threshold must be between 0 and 1"),
        ({"score_threshold": "0.5"}, "score_threshold must be a number, got str"),
        ({"top_k": 2.5}, "top_k must be an integer, got 2.5"),
        ({"top_k": True}, "top_k must be an integer"),
        ({"max_detections": -1}, "max_detections must be from 0 to 10000, got -1"),
        ({"conf_threshold": 1.0}, r"conf_threshold must be in \[0, 1\)"),
        ({"iou_threshold": 0}, r"iou_threshold must be in \(0, 1\]"),
        ({"classes": [-1]}, "ids are 0-based"),
        ({"classes": []}, "classes is empty"),
    ],
)
def test_bad_values_fail_when_built(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message) as info:
        PredictOptions(**kwargs)
    assert isinstance(info.value, YolactppError) and isinstance(info.value, ValueError)


def test_values_are_normalized_and_the_object_is_frozen_and_hashable() -> None:
    options = PredictOptions(score_threshold=1, top_k=7.0, classes=(c for c in ["person", 2]))  # type: ignore[arg-type]
    assert options.score_threshold == 1.0 and isinstance(options.score_threshold, float)
    assert options.top_k == 7 and isinstance(options.top_k, int)
    assert options.classes == ("person", 2)
    assert PredictOptions(classes="person").classes == ("person",)
    assert hash(options) == hash(dataclasses.replace(options))
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.top_k = 3  # type: ignore[misc]


def test_build_overrides_and_names_unknown_keywords() -> None:
    base = PredictOptions(score_threshold=0.3, classes=["car"])
    assert PredictOptions.build(base) is base
    assert PredictOptions.build(base, max_detections=5) == PredictOptions(0.3, max_detections=5, classes=("car",))
    with pytest.raises(TypeError, match=r"unknown prediction option\(s\) \['score_treshold'\]; valid: \['score_threshold'"):
        PredictOptions.build(score_treshold=0.5)
    with pytest.raises(TypeError, match="must be a PredictOptions, got dict"):
        PredictOptions.build({"score_threshold": 0.5})  # type: ignore[arg-type]


def test_resolve_fills_model_defaults_and_matches_class_names() -> None:
    defaults = DetectConfig(conf_threshold=0.1, iou_threshold=0.4, top_k=50, max_detections=20)
    resolved = PredictOptions(top_k=3, classes=["b", 0]).resolve(defaults, ("a", "b", "c"))
    assert resolved.settings == DetectConfig(conf_threshold=0.1, iou_threshold=0.4, top_k=3, max_detections=20)
    assert resolved.class_ids == (0, 1)
    with pytest.raises(ValueError, match="unknown class"):
        PredictOptions(classes=["d"]).resolve(defaults, ("a", "b", "c"))


def test_the_module_imports_no_torch() -> None:
    """An exported-model predictor takes the same object without torch installed."""
    code = "import sys, yolactpp; yolactpp.PredictOptions(classes=['person']); print('torch' in sys.modules)"
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}, check=True)
    assert out.stdout.strip() == "False"


def test_predict_takes_options_or_keywords_alike(v1_model, square_path: Path) -> None:
    options = PredictOptions(score_threshold=0.05, max_detections=4, classes=["person", "frisbee", "sink"])
    by_object = v1_model.predict(str(square_path), options)
    by_keywords = v1_model.predict(str(square_path), score_threshold=0.05, max_detections=4, classes=["person", "frisbee", "sink"])
    assert len(by_object) == len(by_keywords) > 0
    assert torch.equal(by_object.labels, by_keywords.labels) and torch.equal(by_object.scores, by_keywords.scores)
    # keywords override fields of the object
    assert len(v1_model.predict(str(square_path), options, max_detections=1)) == 1
    streamed = list(v1_model.iter_predict([str(square_path)], options=options))
    assert torch.equal(streamed[0].scores, by_object.scores)
