"""Training augmentation: reproducible per key, geometry applied to image, masks and boxes alike,
and the original's rules (crop keeps objects whose centre is inside, at least one non-crowd)."""

from __future__ import annotations

import colorsys
from dataclasses import replace

import numpy as np
import pytest
import torch

from yolactpp.config import PreprocessConfig
from yolactpp.errors import DatasetError
from yolactpp.train.augment import AugmentOptions, Sample, _hsv_to_rgb, _rgb_to_hsv, augment, to_network_input
from yolactpp.train.coco_dataset import CocoDataset, SampleKey
from yolactpp.train.shapes import ShapesDataset

CONFIG = PreprocessConfig(size=64)
NONE = AugmentOptions(photometric_distort=False, expand=False, random_sample_crop=False, random_mirror=False)


def _grid_sample(crowds: int = 2) -> Sample:
    """A 100 x 80 image whose red channel is x and green channel is y, with 5 x 4 box-shaped objects
    (the last ``crowds`` are crowd regions)."""
    height, width = 80, 100
    ys, xs = np.mgrid[0:height, 0:width]
    image = np.stack([xs, ys, np.full_like(xs, 50)], axis=-1).astype(np.uint8)
    boxes, masks = [], []
    for row in range(4):
        for col in range(5):
            x1, y1 = col * 20 + 3, row * 20 + 4
            boxes.append([x1, y1, x1 + 12, y1 + 10])
            mask = np.zeros((height, width), dtype=np.uint8)
            mask[y1 : y1 + 10, x1 : x1 + 12] = 1
            masks.append(mask)
    labels = np.array([i % 3 for i in range(20 - crowds)] + [-1] * crowds, dtype=np.int64)
    return Sample(image, np.stack(masks), np.array(boxes, dtype=np.float64), labels, crowds)


def _mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def test_same_key_same_sample_other_epoch_differs(shapes: ShapesDataset) -> None:
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG)
    first, again = data[SampleKey(3, 1, 7)], data[SampleKey(3, 1, 7)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1].masks, again[1].masks)
    assert torch.equal(first[1].boxes, again[1].boxes)
    others = [data[SampleKey(3, epoch, 7)][0] for epoch in range(2, 5)]
    assert not any(torch.equal(first[0], other) for other in others)


@pytest.mark.parametrize("crop", [False, True])
def test_augmented_boxes_follow_their_masks(crop: bool, shapes: ShapesDataset) -> None:
    """Without the crop each object's box is its mask's bounding box, within the 1.5 pixels a thin tip
    can lose when a mask is shrunk (up to 6x here) and binarised; the crop clips boxes as the original
    does (not re-fitted), so there, and for crowd regions (scattered blobs), the mask lies inside its box."""
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG, augment=AugmentOptions(random_sample_crop=crop))
    size = CONFIG.size
    checked = 0
    for key in range(24):
        image, targets = data[SampleKey(key % len(data), key // len(data), 1)]
        assert image.shape == (3, size, size) and image.dtype == torch.float32
        assert set(torch.unique(targets.masks).tolist()) <= {0.0, 1.0}
        assert targets.labels[: len(targets.labels) - targets.num_crowds].min() >= 0
        assert (targets.labels[len(targets.labels) - targets.num_crowds :] == -1).all()
        for box, mask, label in zip(targets.boxes.numpy() * size, targets.masks.numpy(), targets.labels):
            if not mask.any():  # a crop can keep a box whose mask pixels it cut away, as in the original
                assert crop
                continue
            fitted = _mask_box(mask)
            if crop or label < 0:
                assert (fitted[:2] >= box[:2] - 1).all() and (fitted[2:] <= box[2:] + 1).all()
            else:
                np.testing.assert_allclose(box, fitted, atol=1.5)
            checked += 1
    assert checked > 30


def test_crop_keeps_objects_whose_centre_is_inside() -> None:
    sample = _grid_sample()
    options = replace(NONE, random_sample_crop=True)
    centres = (sample.boxes[:, :2] + sample.boxes[:, 2:]) / 2
    cropped = 0
    for seed in range(40):
        out = augment(sample, np.random.default_rng(seed), options)
        height, width = out.size
        if (height, width) == sample.size:
            assert np.array_equal(out.labels, sample.labels)  # the "keep the image" mode
            continue
        cropped += 1
        x1, y1 = out.image[0, 0, :2].astype(int)  # the pixel's coordinates in the input
        rect = np.array([x1, y1, x1 + width, y1 + height], dtype=np.float64)
        assert 0.5 <= height / width <= 2 and width >= 0.3 * 100 - 1 and height >= 0.3 * 80 - 1
        inside = (
            (rect[0] < centres[:, 0])
            & (centres[:, 0] < rect[2])
            & (rect[1] < centres[:, 1])
            & (centres[:, 1] < rect[3])
        )
        np.testing.assert_array_equal(out.labels, sample.labels[inside])
        assert out.num_crowds == int((sample.labels[inside] < 0).sum()) and (out.labels >= 0).any()
        expected = np.clip(sample.boxes[inside], rect[[0, 1, 0, 1]], rect[[2, 3, 2, 3]]) - rect[[0, 1, 0, 1]]
        np.testing.assert_allclose(out.boxes, expected)
        for box, mask in zip(out.boxes, out.masks):
            np.testing.assert_allclose(_mask_box(mask), box)
    assert cropped >= 25  # five of the six modes crop


def test_crop_needs_a_non_crowd_object() -> None:
    sample = _grid_sample(crowds=19)  # one ordinary object (the first), nineteen crowds
    options = replace(NONE, random_sample_crop=True)
    for seed in range(20):
        out = augment(sample, np.random.default_rng(seed), options)
        assert out.labels[0] == 0 and (out.labels[1:] == -1).all()


def test_mirror_flips_image_masks_and_boxes() -> None:
    sample = _grid_sample()
    options = replace(NONE, random_mirror=True)
    outcomes = set()
    for seed in range(8):
        out = augment(sample, np.random.default_rng(seed), options)
        flipped = not np.array_equal(out.image, sample.image)
        outcomes.add(flipped)
        if flipped:
            np.testing.assert_array_equal(out.image, sample.image[:, ::-1])
            np.testing.assert_array_equal(out.masks, sample.masks[:, :, ::-1])
            np.testing.assert_allclose(out.boxes[:, [0, 2]], 100 - sample.boxes[:, [2, 0]])
            for box, mask in zip(out.boxes, out.masks):
                np.testing.assert_allclose(_mask_box(mask), box)
    assert outcomes == {True, False}


def test_expand_places_the_image_on_a_mean_canvas() -> None:
    sample = _grid_sample()
    fill = (10.0, 20.0, 30.0)
    grown = 0
    for seed in range(10):
        out = augment(sample, np.random.default_rng(seed), replace(NONE, expand=True), fill)
        if out.size == sample.size:
            continue
        grown += 1
        height, width = out.size
        assert 80 <= height <= 320 and 100 <= width <= 400
        x1, y1 = (int(v) for v in out.boxes[0, :2] - sample.boxes[0, :2])
        np.testing.assert_array_equal(out.image[y1 : y1 + 80, x1 : x1 + 100], sample.image)
        np.testing.assert_array_equal(out.masks[:, y1 : y1 + 80, x1 : x1 + 100], sample.masks)
        assert out.masks.sum() == sample.masks.sum()
        outside = np.ones((height, width), dtype=bool)
        outside[y1 : y1 + 80, x1 : x1 + 100] = False
        assert (out.image[outside] == np.float32(fill)).all()
    assert grown >= 3


def test_photometric_distortion_changes_colours_only() -> None:
    sample = _grid_sample()
    options = replace(NONE, photometric_distort=True)
    changed = 0
    for seed in range(6):
        out = augment(sample, np.random.default_rng(seed), options)
        assert out.image.dtype == np.float32 and out.size == sample.size
        np.testing.assert_array_equal(out.masks, sample.masks)
        np.testing.assert_array_equal(out.boxes, sample.boxes)
        changed += not np.allclose(out.image, sample.image, atol=1e-3)
    assert changed >= 4
    assert sample.image.dtype == np.uint8  # the input is not modified


def test_hsv_conversion_matches_colorsys_and_round_trips() -> None:
    rgb = np.random.default_rng(0).uniform(0, 255, size=(50, 3)).astype(np.float32)
    hsv = _rgb_to_hsv(rgb)
    for (r, g, b), (h, s, v) in zip(rgb, hsv):
        eh, es, ev = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)
        assert (
            h == pytest.approx(eh * 360, abs=1e-3)
            and s == pytest.approx(es, abs=1e-5)
            and v == pytest.approx(ev * 255, abs=1e-3)
        )
    np.testing.assert_allclose(_hsv_to_rgb(hsv), rgb, atol=1e-3)


def test_tiny_boxes_are_discarded_at_network_size() -> None:
    sample = _grid_sample(crowds=0)
    boxes = sample.boxes.copy()
    boxes[0] = [3, 4, 4, 5]  # 1 x 1 pixel in a 100 x 80 image: 0.64 x 0.8 pixel at 64 x 64
    sample = replace(sample, boxes=boxes)
    _, kept = to_network_input(sample, CONFIG)
    assert len(kept.labels) == 20  # the original's 4/550 compares with pixels: only degenerate boxes go
    _, dropped = to_network_input(sample, CONFIG, replace(NONE, discard_box_width=0.7, discard_box_height=0.7))
    assert len(dropped.labels) == 19 and torch.equal(dropped.labels, torch.from_numpy(sample.labels[1:]))


def test_sample_left_empty_is_replaced_then_fails_clearly(shapes: ShapesDataset) -> None:
    options = AugmentOptions(discard_box_width=1000.0)
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG, augment=options)
    with pytest.raises(DatasetError, match="kept no object"):
        data[0]


def test_hsv_conversion_matches_opencv_outside_the_usual_range() -> None:
    """The original distorts in OpenCV's float HSV, unclipped: values past 0..255 and saturation over 1."""
    cv2 = pytest.importorskip("cv2")  # installed with the dev extras (trackers)
    rgb = np.random.default_rng(1).uniform(-60, 320, size=(40, 50, 3)).astype(np.float32)
    reference = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2HSV)
    np.testing.assert_allclose(_rgb_to_hsv(rgb), reference, rtol=1e-5, atol=1e-4)
    reference[..., 1] *= 1.4
    back = cv2.cvtColor(reference, cv2.COLOR_HSV2BGR)[..., ::-1]
    np.testing.assert_allclose(_hsv_to_rgb(reference), back, rtol=1e-5, atol=1e-3)
