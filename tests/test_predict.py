"""predict(): batching, thresholds, dtypes and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.oracle.compare import image_path
from yolactpp import Detections, YolactPP


@pytest.fixture(scope="module")
def model(checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint("yolact_plus_resnet50"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    square = np.array(Image.open(image_path("square_550x550")).convert("RGB"))
    landscape = np.array(Image.open(image_path("landscape_1280x720")).convert("RGB").resize((320, 180)))
    return [square, landscape]


def test_single_and_list_inputs(model: YolactPP, images: list[np.ndarray]) -> None:
    single = model.predict(images[1])
    assert isinstance(single, Detections)
    assert single.image_size == (180, 320)
    assert single.masks.shape == (len(single), 180, 320) and single.masks.dtype == torch.bool
    assert single.labels.dtype == torch.int64
    assert single.class_names == [model.class_names[i] for i in single.labels]
    assert model.predict([]) == []


def test_batch_equals_one_by_one(model: YolactPP, images: list[np.ndarray]) -> None:
    batch = model.predict(images)
    assert isinstance(batch, list) and len(batch) == 2
    for image, det in zip(images, batch):
        alone = model.predict(image)
        assert torch.equal(det.labels, alone.labels)
        torch.testing.assert_close(det.scores, alone.scores, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(det.boxes, alone.boxes, rtol=1e-4, atol=1e-2)


def test_iter_predict_streams_in_batches(model: YolactPP, images: list[np.ndarray]) -> None:
    calls = []
    original = model._infer

    def spy(arrays, *args):
        calls.append(len(arrays))
        return original(arrays, *args)

    model._infer = spy  # type: ignore[method-assign]
    try:
        out = list(model.iter_predict(iter(images * 2 + images[:1]), batch_size=2))
    finally:
        del model._infer
    assert calls == [2, 2, 1]
    assert [d.image_size for d in out] == [(550, 550), (180, 320)] * 2 + [(550, 550)]


def test_yolact_plus_scores_are_rescored(model: YolactPP, images: list[np.ndarray]) -> None:
    det = model.predict(images[0])
    assert det.mask_iou is not None
    torch.testing.assert_close(det.scores, det.box_scores * det.mask_iou, rtol=0, atol=0)
    assert torch.all(det.box_scores[:-1] >= det.box_scores[1:])  # original order: by detection score


class _ClassColumnIoU(torch.nn.Module):
    """A stand-in MaskIoU net whose predicted IoU for class c is (c + 1) / 128, for every mask."""

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return ((torch.arange(80, dtype=masks.dtype) + 1) / 128).expand(masks.shape[0], 80)


def test_rescoring_uses_the_detected_class_iou(model: YolactPP, images: list[np.ndarray]) -> None:
    """Each detection is re-scored with its own class's predicted IoU; with ``classes`` the labels
    are mapped back to model classes first, so the column is the model class, not the position."""
    real = model.network.maskiou_net  # swapped by hand: monkeypatch's undo would delete a submodule
    model.network.maskiou_net = _ClassColumnIoU()
    try:
        det = model.predict(images[1], classes=["frisbee", "sink"])
    finally:
        model.network.maskiou_net = real
    assert det.mask_iou is not None and set(det.class_names) == {"frisbee", "sink"}
    assert det.mask_iou.tolist() == ((det.labels + 1) / 128).tolist()
    assert det.scores.tolist() == (det.box_scores * det.mask_iou).tolist()


def test_thresholds_and_limits(model: YolactPP, images: list[np.ndarray]) -> None:
    full = model.predict(images[0])
    cut = model.predict(images[0], score_threshold=0.3)
    assert len(cut) == int((full.scores > 0.3).sum()) and torch.all(cut.scores > 0.3)
    assert len(model.predict(images[0], max_detections=7)) == 7
    loose = model.predict(images[0], max_detections=10_000)
    strict = model.predict(images[0], iou_threshold=0.1, max_detections=10_000)
    assert len(full) == 100 < len(strict) < len(loose) < 10_000  # (10,000: the largest cap allowed)
    # conf_threshold pre-filters priors by their best class score; as in the original, every class
    # of a surviving prior then goes through NMS with no further threshold.
    few = model.predict(images[0], conf_threshold=0.9, max_detections=10_000)
    assert len(few) < len(loose) and few.box_scores.max() > 0.9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"score_threshold": -0.1}, "score_threshold"),
        ({"top_k": 0}, "top_k"),
        ({"max_detections": -1}, "max_detections"),
        ({"conf_threshold": 1.5}, "conf_threshold"),
        ({"iou_threshold": 0.0}, "iou_threshold"),
    ],
)
def test_bad_arguments(model: YolactPP, images: list[np.ndarray], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model.predict(images[0], **kwargs)


def test_float64_runs_everything_in_float64(model: YolactPP, images: list[np.ndarray]) -> None:
    model64 = YolactPP(model.config)
    model64.load_state_dict(model.state_dict())
    model64.to(torch.float64)
    det = model64.predict(images[1])
    assert det.scores.dtype == det.boxes.dtype == det.soft_masks.dtype == torch.float64
    priors = model64.network.priors([(23, 23)] * 5, torch.float64, torch.device("cpu"))
    assert priors.dtype == torch.float64
    # priors are not rounded through float32 in float64 mode
    assert not torch.equal(priors, priors.float().double())
