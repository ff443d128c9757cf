"""Drawing: colours per class, mask blending, and Detections.plot on a real prediction."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from yolactpp.plotting import PALETTE, blend_masks, class_color


def test_class_colours_are_stable_and_distinct() -> None:
    assert class_color(3) == class_color(3 + len(PALETTE)) == PALETTE[3]
    assert len(set(PALETTE)) == len(PALETTE)


def test_blend_follows_the_alpha_formula_and_paints_best_last() -> None:
    image = np.full((4, 5, 3), 100, dtype=np.uint8)
    masks = np.zeros((2, 4, 5), dtype=bool)
    masks[0, :2] = True  # rows 0-1
    masks[1, 1:3] = True  # rows 1-2, painted over mask 0 in row 1
    out = blend_masks(image, masks, [(200, 0, 0), (0, 0, 200)], alpha=0.5)
    assert out[0, 0].tolist() == [150, 50, 50]
    assert out[2, 0].tolist() == [50, 50, 150]
    assert out[1, 0].tolist() == [75, 25, 125]  # (150, 50, 50) then mixed with blue
    assert out[3].tolist() == image[3].tolist()  # untouched outside every mask
    with pytest.raises(ValueError, match="alpha"):
        blend_masks(image, masks, [(0, 0, 0)] * 2, alpha=1.5)


def test_plot_changes_exactly_the_masks_and_keeps_the_rest(landscape_det, landscape_path) -> None:
    det = landscape_det.filter(min_score=0.7)
    assert len(det) > 3
    original = np.asarray(Image.open(landscape_path).convert("RGB"))
    masks_only = np.asarray(det.plot(boxes=False, labels=False))
    assert masks_only.shape == original.shape
    changed = (masks_only != original).any(axis=2)
    union = det.masks.numpy().any(axis=0)
    assert union.sum() > 100
    assert not changed[~union].any()  # nothing outside the masks
    assert changed[union].mean() > 0.99  # and (almost) every mask pixel; equal only where colour ~ pixel

    full = np.asarray(det.plot())
    assert full.shape == original.shape
    diff = (full != original).any(axis=2)
    near = union.copy()
    h, w = union.shape
    for x1, y1, x2, y2 in det.boxes.round().int().tolist():  # box, plus room for the label above/inside it
        near[max(0, y1 - 40) : min(h, y2 + 3), max(0, min(x1, w - 260) - 3) : min(w, max(x2, x1 + 260) + 3)] = True
    assert not diff[~near].any()
    for x1, y1, x2, y2 in det.boxes.int().tolist():
        assert diff[y1 : y2 + 1, x1 : x2 + 1].any()  # outline or label drawn for every box


def test_plot_needs_a_matching_image(landscape_det, square_path) -> None:
    det = landscape_det[:2]
    with pytest.raises(ValueError, match="720"):
        det.plot(square_path)
    bare = det._replace(image=None, path=None)
    with pytest.raises(ValueError, match="no image"):
        bare.plot()
    other = np.zeros((720, 1280, 3), dtype=np.uint8)
    painted = np.asarray(bare.plot(other, boxes=False, labels=False)).any(axis=2)
    assert np.array_equal(painted, bare.masks.numpy().any(axis=0))  # the given image, painted where the masks are
