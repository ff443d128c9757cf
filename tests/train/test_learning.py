"""Proof that training learns: mask AP50 on held-out generated shapes rises from < 0.05 to >= 0.5.

The model is the tiny YOLACT of :mod:`tests.train.tiny` (96 px, 32 FPN channels) trained from
scratch with the default loss, SGD schedule and augmentation pipeline through ``YolactPP.fit``;
the most expensive test of the training suite (see LEARNING_OPTIONS for its size).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.train.tiny import LEARNING_IMAGES, LEARNING_OPTIONS, LEARNING_SIZE, learning_data, learning_model
from yolactpp.evaluate import evaluate_coco
from yolactpp.train.shapes import make_shapes_splits


@pytest.mark.xfail(
    strict=True,
    reason="not reached yet: with anchors sized for the shapes this configuration measured mask AP50 0.211 / box AP50 "
    "0.291 after 200 iterations (0.013 / 0.032 with the zoo's anchors scaled to 96 px)",
)
def test_fine_tuning_raises_mask_ap50_on_held_out_images(tmp_path: Path) -> None:
    train, val = make_shapes_splits(tmp_path / "shapes", *LEARNING_IMAGES, seed=0, image_size=LEARNING_SIZE)
    model = learning_model()
    before = evaluate_coco(model, val.annotations, val.images, max_detections=20)  # type: ignore[arg-type]
    assert before.mask["AP50"] < 0.05

    result = model.fit(  # type: ignore[attr-defined]
        learning_data(train.annotations, train.images), (val.annotations, val.images), output_dir=tmp_path / "run", **LEARNING_OPTIONS
    )
    after = result.validation
    assert after is not None and after.num_images == LEARNING_IMAGES[1]
    assert after.mask["AP50"] >= 0.5, after.table()
    assert after.box["AP50"] >= 0.5, after.table()
