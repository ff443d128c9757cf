"""COCO format helpers: RLE round trips, category ids, integer boxes, records of hand-made detections."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from yolactpp.classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolactpp.coco import (
    decode_mask_rle,
    default_category_ids,
    encode_mask_rle,
    encode_masks_rle,
    integer_xywh,
    resolve_category_ids,
)
from yolactpp.results import Detections


def _random_masks(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, h, w)) > 0.6


def test_rle_round_trip_and_json_ready() -> None:
    masks = _random_masks(3, 17, 23)
    rles = encode_masks_rle(masks)
    assert [r["size"] for r in rles] == [[17, 23]] * 3
    assert all(isinstance(r["counts"], str) for r in rles)
    for mask, rle in zip(masks, rles):
        assert np.array_equal(decode_mask_rle(rle), mask)
        assert encode_mask_rle(mask) == rle
        # the same as pycocotools' own encoding of a Fortran-order uint8 mask
        ref = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        assert rle["counts"] == ref["counts"].decode("ascii")


def test_rle_of_no_masks_and_bad_shapes() -> None:
    assert encode_masks_rle(np.zeros((0, 4, 4), dtype=bool)) == []
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        encode_masks_rle(np.zeros((4, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        encode_mask_rle(np.zeros((1, 4, 4), dtype=bool))


def test_category_ids() -> None:
    assert default_category_ids(COCO_CLASSES) == COCO_CATEGORY_IDS
    assert default_category_ids(("cat", "dog", "fox")) == (1, 2, 3)
    assert resolve_category_ids(("cat", "dog"), [7, 9]) == (7, 9)
    assert resolve_category_ids(("cat", "dog"), {"dog": 4}) == (None, 4)
    with pytest.raises(ValueError, match="2 classes"):
        resolve_category_ids(("cat", "dog"), [1])
    with pytest.raises(ValueError, match="horse"):
        resolve_category_ids(("cat", "dog"), {"horse": 1})


def test_integer_xywh_truncates_like_the_original() -> None:
    boxes = np.array([[1.9, 2.2, 10.7, 5.99], [0.0, 0.0, 0.5, 3.0]])
    assert integer_xywh(boxes).tolist() == [[1, 2, 9, 3], [0, 0, 0, 3]]


def _detections(names: tuple[str, ...]) -> Detections:
    rng = np.random.default_rng(1)
    soft = torch.from_numpy(rng.random((3, 8, 8)).astype(np.float32))
    return Detections(
        boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [4.2, 4.0, 4.9, 12.0], [8.0, 2.0, 15.5, 9.0]]),
        scores=torch.tensor([0.9, 0.8, 0.5]),
        box_scores=torch.tensor([0.95, 0.85, 0.7]),
        labels=torch.tensor([1, 0, 2]),
        names=names,
        image_size=(16, 16),
        soft_masks=soft,
    )


def test_records_of_custom_classes() -> None:
    det = _detections(("cat", "dog", "fox"))
    both = det.to_coco(image_id=5)
    # the second box is 0 px wide once truncated, so it is left out as in the original
    assert [r["category_id"] for r in both] == [2, 3]
    assert [r["bbox"] for r in both] == [[0.0, 0.0, 10.0, 10.0], [8.0, 2.0, 7.0, 7.0]]
    assert [r["score"] for r in both] == pytest.approx([0.9, 0.5])
    assert all(r["image_id"] == 5 for r in both)
    for r, i in zip(both, (0, 2)):
        assert np.array_equal(decode_mask_rle(r["segmentation"]), det.masks[i].numpy())

    boxes = det.to_coco(5, kind="bbox", skip_empty=False)
    assert [r["score"] for r in boxes] == pytest.approx([0.95, 0.85, 0.7])  # scores before mask re-scoring
    assert all("segmentation" not in r for r in boxes)
    masks = det.to_coco(5, kind="segm")
    assert all("bbox" not in r for r in masks) and [r["score"] for r in masks] == pytest.approx([0.9, 0.5])

    mapped = det.to_coco(5, {"fox": 30, "dog": 20})
    assert [r["category_id"] for r in mapped] == [20, 30]
    only_fox = det.to_coco(5, {"fox": 30})
    assert [r["category_id"] for r in only_fox] == [30]
    with pytest.raises(ValueError, match="kind"):
        det.to_coco(5, kind="masks")  # type: ignore[arg-type]
