"""The Detections results object on real predictions of an oracle model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO

from yolactpp.classes import COCO_CATEGORY_IDS
from yolactpp.coco import decode_mask_rle, integer_xywh
from yolactpp.results import DetectionArrays


def test_masks_are_lazy_and_cached(square_det) -> None:
    det = square_det._replace(masks=None)  # a copy without the cache, as predict returns it
    assert det._masks is None  # nothing at full resolution until asked
    assert det.soft_masks.shape[0] == len(det) and det.soft_masks.dtype.is_floating_point
    masks = det.masks
    assert masks.shape == (len(det), 550, 550) and masks.dtype == torch.bool
    assert det.masks is masks  # cached
    small = det.masks_at(275, 275)
    assert small.shape == (len(det), 275, 275)
    # the same soft masks at half size: area roughly a quarter of the full-size one
    big, little = masks.sum().item(), small.sum().item()
    assert big > 0 and abs(4 * little - big) < 0.1 * big
    assert det[:3].masks.shape == (3, 550, 550)


def test_to_coco_rle_decodes_to_masks(landscape_det) -> None:
    det = landscape_det
    records = det.to_coco(image_id=7, skip_empty=False)
    assert len(records) == len(det)
    labels = det.labels.tolist()
    xywh = integer_xywh(det.boxes.numpy())
    for i, record in enumerate(records):
        assert record["image_id"] == 7
        assert record["category_id"] == COCO_CATEGORY_IDS[labels[i]]
        assert record["bbox"] == xywh[i].tolist()
        assert record["score"] == pytest.approx(det.scores[i].item())
        assert np.array_equal(decode_mask_rle(record["segmentation"]), det.masks[i].numpy())
    kept = det.to_coco(image_id=7)
    assert len(kept) == int(((xywh[:, 2] * xywh[:, 3]) > 0).sum())
    json.dumps(kept)  # JSON-ready


def test_to_coco_is_accepted_by_pycocotools(landscape_det) -> None:
    gt = COCO()
    gt.dataset = {
        "images": [{"id": 7, "height": 720, "width": 1280, "file_name": "x.png"}],
        "annotations": [],
        "categories": [{"id": c, "name": str(c)} for c in COCO_CATEGORY_IDS],
    }
    gt.createIndex()
    records = landscape_det.to_coco(7)
    dt = gt.loadRes(records)
    assert len(dt.getAnnIds()) == len(records)
    xywh = integer_xywh(landscape_det.boxes.numpy())
    anns = dt.loadAnns(dt.getAnnIds())
    kept = np.flatnonzero(xywh[:, 2] * xywh[:, 3] > 0)
    assert [a["bbox"] for a in anns] == xywh[kept].tolist()
    assert [a["category_id"] for a in anns] == [COCO_CATEGORY_IDS[i] for i in landscape_det.labels[kept].tolist()]
    for ann, i in list(zip(anns, kept))[:3]:  # pycocotools' own decoding of the written RLE
        assert np.array_equal(dt.annToMask(ann).astype(bool), landscape_det.masks[i].numpy())


def test_yolact_plus_box_and_mask_scores(checkpoint, landscape_path: Path) -> None:
    from yolactpp import YolactPP

    det = YolactPP.from_pretrained(checkpoint("yolact_plus_resnet50")).predict(landscape_path)[:10]
    assert det.mask_iou is not None
    torch.testing.assert_close(det.scores, det.box_scores * det.mask_iou)
    boxes, masks = det.to_coco(1, kind="bbox", skip_empty=False), det.to_coco(1, kind="segm", skip_empty=False)
    assert [r["score"] for r in boxes] == pytest.approx(det.box_scores.tolist())
    assert [r["score"] for r in masks] == pytest.approx(det.scores.tolist())
    rows = det.summary()
    assert [r["mask_iou"] for r in rows] == pytest.approx(det.mask_iou.tolist())


def test_filter_by_class_and_score(landscape_det) -> None:
    det = landscape_det
    names = det.class_names
    frisbee = det.filter(classes="frisbee")
    assert len(frisbee) == names.count("frisbee") > 0
    assert set(frisbee.class_names) == {"frisbee"}
    both = det.filter(classes=["frisbee", 71])  # names and ids mix; 71 = sink
    assert len(both) == names.count("frisbee") + names.count("sink")
    high = det.filter(min_score=0.7)
    assert len(high) == int((det.scores >= 0.7).sum()) and bool((high.scores >= 0.7).all())
    combined = det.filter(classes=["sink"], min_score=0.7)
    assert len(combined) == sum(1 for n, s in zip(names, det.scores.tolist()) if n == "sink" and s >= 0.7)
    with pytest.raises(ValueError, match=r"did you mean 'frisbee'.*Valid classes.*person, bicycle"):
        det.filter(classes=["frisbe"])
    with pytest.raises(ValueError, match="id 80"):
        det.filter(classes=[80])


def test_predict_classes_selects_before_the_detection_cap(v1_model, landscape_path: Path, landscape_det) -> None:
    chosen = v1_model.predict(landscape_path, classes=["frisbee", "sink"])
    assert set(chosen.class_names) <= {"frisbee", "sink"}
    # every frisbee/sink detection of the unrestricted run (above the pre-NMS threshold) is found again,
    # and the 100-detection cap is now spent on these two classes only
    before = landscape_det.filter(classes=["frisbee", "sink"])
    before = before[before.box_scores > 0.05]
    assert len(chosen) == 100 > len(before) > 0
    for label, box in zip(before.labels.tolist(), before.boxes):  # the same box, up to float rounding
        same_class = chosen.boxes[chosen.labels == label]
        assert (same_class - box).abs().amax(dim=1).min() < 1e-3, (label, box)
    with pytest.raises(ValueError, match=r"unknown class.*'persn'.*did you mean 'person'"):
        v1_model.predict(landscape_path, classes=["persn"])


def test_numpy_and_dict_views(landscape_det) -> None:
    det = landscape_det[:5]
    arrays = det.numpy()
    assert isinstance(arrays, DetectionArrays) and len(arrays) == 5
    assert isinstance(arrays.boxes, np.ndarray) and arrays.boxes.shape == (5, 4)
    assert np.array_equal(arrays.masks, det.masks.numpy())
    assert arrays.class_names == det.class_names and arrays.mask_iou is None
    assert det.numpy(masks=False).masks is None

    data = json.loads(det.to_json())
    assert data["image_size"] == {"height": 720, "width": 1280}
    assert data["path"] == det.path
    rows = data["detections"]
    assert [r["class_name"] for r in rows] == det.class_names
    assert [r["box"] for r in rows] == det.boxes.tolist()  # float32 values are exact in JSON doubles
    for i, row in enumerate(rows):
        assert np.array_equal(decode_mask_rle(row["mask"]), arrays.masks[i])
    assert "mask" not in det.to_dict(masks=False)["detections"][0]
    assert det.summary(decimals=2)[0]["score"] == round(det.scores[0].item(), 2)


def test_indexing_keeps_every_field(landscape_det) -> None:
    det = landscape_det
    picked = det[[3, 1]]
    assert picked.boxes.tolist() == [det.boxes[3].tolist(), det.boxes[1].tolist()]
    assert picked.class_names == [det.class_names[3], det.class_names[1]]
    assert picked.image is det.image and picked.path == det.path
    assert len(det[np.int64(2)]) == 1 and len(det[det.scores > 2]) == 0
    with pytest.raises(IndexError):
        det[len(det)]


def test_save_masks_writes_one_png_per_detection(landscape_det, tmp_path: Path) -> None:
    det = landscape_det[:4]
    paths = det.save_masks(tmp_path / "masks")
    assert [p.name for p in paths] == [f"landscape_1280x720_{i:03d}_{n.replace(' ', '_')}.png" for i, n in enumerate(det.class_names)]
    for path, mask in zip(paths, det.masks.numpy()):
        assert np.array_equal(np.asarray(Image.open(path)) > 127, mask)
