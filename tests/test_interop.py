"""Detections in other libraries' shapes: supervision, polygons (COCO, labelling tools), pandas, tracks."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from yolactpp.polygons import mask_to_polygons, polygon_area, polygons_to_coco
from yolactpp.results import Detections


def _rasterize(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons -> bool mask, the way pycocotools (and so COCO tools) read them."""
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, height, width))).astype(bool)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_polygons_trace_each_part_and_fill_holes_like_coco() -> None:
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, 5:45] = True  # a ring: a 30 x 40 block ...
    mask[20:30, 15:35] = False  # ... with a hole
    mask[45:60, 60:80] = True  # a second part touching the bottom-right border
    outlines = mask_to_polygons(mask, tolerance=0)
    assert len(outlines) == 2  # one polygon per part, none for the hole
    ring, corner = outlines  # ordered top first
    assert ring[:, 0].min() == 5 and ring[:, 0].max() == 45 and ring[:, 1].min() == 10 and ring[:, 1].max() == 40
    assert corner[:, 0].max() == 80 and corner[:, 1].max() == 60  # closed along the image border
    assert polygon_area(ring) == pytest.approx(30 * 40, abs=2)  # the hole is filled (corners cut by half a pixel)
    filled = mask.copy()
    filled[20:30, 15:35] = True
    coco = polygons_to_coco(outlines)
    assert all(len(p) % 2 == 0 and len(p) >= 6 for p in coco)
    assert _iou(_rasterize(coco, 60, 80), filled) > 0.97

    simplified = mask_to_polygons(mask, tolerance=1.0)
    assert [len(p) for p in simplified] < [len(p) for p in outlines]
    assert all(len(p) == 4 for p in simplified)  # rectangles simplify to 4 corners
    assert mask_to_polygons(np.zeros((5, 5), dtype=bool)) == []
    with pytest.raises(ValueError, match="tolerance"):
        mask_to_polygons(mask, tolerance=-1)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        mask_to_polygons(mask[None])


def test_detections_polygons_and_coco_polygon_records(square_det) -> None:
    det = square_det[:20]
    masks = det.numpy().masks
    polygons = det.polygons()
    assert len(polygons) == len(det)
    records = det.to_coco(7, polygons=True)
    rle_records = det.to_coco(7)
    assert [r["bbox"] for r in records] == [r["bbox"] for r in rle_records]
    checked = 0
    for record, mask in zip(records, masks[: len(records)]):
        if mask.sum() < 200:
            continue
        assert isinstance(record["segmentation"], list)  # polygons, not RLE
        drawn = _rasterize(record["segmentation"], *det.image_size)
        assert _iou(drawn, mask) > 0.75
        checked += 1
    assert checked >= 5


def test_to_supervision_carries_every_field_and_feeds_its_annotators(square_det) -> None:
    sv = pytest.importorskip("supervision")
    det = square_det[:5]
    arrays = det.numpy()
    converted = det.to_supervision()
    assert isinstance(converted, sv.Detections) and len(converted) == 5
    np.testing.assert_allclose(converted.xyxy, arrays.boxes, rtol=1e-6)
    np.testing.assert_array_equal(converted.mask, arrays.masks)
    np.testing.assert_allclose(converted.confidence, arrays.scores, rtol=1e-6)
    np.testing.assert_array_equal(converted.class_id, arrays.labels)
    assert list(converted.data["class_name"]) == det.class_names
    assert converted.tracker_id is None
    image = det.image.copy()
    annotated = sv.MaskAnnotator().annotate(scene=image.copy(), detections=converted)
    changed = (annotated != image).any(axis=2)
    assert changed.any() and not changed[~arrays.masks.any(axis=0)].any()  # only mask pixels are painted


def test_to_pandas_has_one_row_per_detection(square_det) -> None:
    pytest.importorskip("pandas")
    det = square_det[:8]
    arrays = det.numpy()
    table = det.to_pandas()
    assert list(table.columns) == [
        "class_id", "class_name", "score", "box_score", "mask_iou", "x1", "y1", "x2", "y2", "area",
    ]  # fmt: skip
    assert len(table) == 8
    assert table["class_name"].tolist() == det.class_names
    np.testing.assert_allclose(table[["x1", "y1", "x2", "y2"]].to_numpy(), arrays.boxes, rtol=1e-6)
    np.testing.assert_allclose(table["score"], arrays.scores, rtol=1e-6)
    assert table["area"].tolist() == arrays.masks.sum(axis=(1, 2)).tolist()
    assert table["mask_iou"].isna().all()  # YOLACT (not ++) has no mask IoU
    assert len(det[:0].to_pandas()) == 0


@pytest.mark.parametrize(
    ("module", "call", "extra"),
    [
        ("pandas", lambda d: d.to_pandas(), "yolactpp[pandas]"),
        ("supervision", lambda d: d.to_supervision(), "yolactpp[supervision]"),
        ("contourpy", lambda d: d.polygons(), "yolactpp[polygons]"),
    ],
)
def test_a_missing_optional_library_names_the_extra(square_det, monkeypatch, module, call, extra) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(ImportError, match=extra.replace("[", r"\[").replace("]", r"\]")):
        call(square_det[:2])


def _frame(boxes: list[list[float]], scores: list[float]) -> Detections:
    n = len(boxes)
    return Detections(
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
        scores=torch.tensor(scores),
        labels=torch.zeros(n, dtype=torch.long),
        names=("thing",),
        image_size=(200, 300),
        soft_masks=torch.zeros(n, 4, 4),
    )


def test_tracker_keeps_ids_with_their_objects_across_frames() -> None:
    pytest.importorskip("trackers")
    from yolactpp.tracking import Tracker

    tracker = Tracker(frame_rate=10)
    seen = []
    for step in range(5):
        a = [10 + 4 * step, 20, 60 + 4 * step, 80]  # moves right
        b = [200 - 3 * step, 100, 260 - 3 * step, 170]  # moves left
        boxes, scores = ([a, b], [0.9, 0.95]) if step % 2 == 0 else ([b, a], [0.95, 0.9])  # order changes
        tracked = tracker.update(_frame(boxes, scores))
        ids = tracked.track_ids.tolist()
        seen.append(ids if step % 2 == 0 else ids[::-1])  # as [id of a, id of b]
        torch.testing.assert_close(tracked.boxes, torch.tensor(boxes, dtype=torch.float32))  # order kept
    assert seen[0] == [-1, -1]  # a track is confirmed on its second frame
    assert len(set(map(tuple, seen[1:]))) == 1 and seen[1][0] != seen[1][1] and min(seen[1]) >= 0
    rows = tracked.summary()
    assert [r["track_id"] for r in rows] == tracked.track_ids.tolist()
    assert tracked[1:].track_ids.tolist() == tracked.track_ids.tolist()[1:]  # indexing keeps them aligned
    assert _frame([[0, 0, 5, 5]], [0.9]).summary()[0].keys() >= {"class_id"} and "track_id" not in _frame(
        [[0, 0, 5, 5]], [0.9]
    ).summary()[0]


def test_tracked_plot_labels_carry_the_track_id() -> None:
    det = _frame([[10, 10, 120, 90]], [0.9])
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    plain = np.asarray(det.plot(image, masks=False))
    tracked = np.asarray(det._replace(track_ids=torch.tensor([12])).plot(image, masks=False))
    assert (plain != tracked).any()  # "#12 thing 0.90" differs from "thing 0.90"


def test_predict_images_writes_a_coco_polygon_dataset_and_a_csv(square_path, v1_checkpoint, tmp_path) -> None:
    import csv
    import json
    import shutil

    from pycocotools.coco import COCO

    from yolactpp.cli import main

    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(square_path, images / "000000000042.png")  # a COCO-style name: image id 42
    out = tmp_path / "out"
    args = ["predict", str(images), "-m", str(v1_checkpoint), "-o", str(out), "--score-threshold", "0.5"]
    assert main([*args, "--save-polygons", "--save-csv", "--no-plot", "-q"]) == 0
    result = json.loads((out / "000000000042.json").read_text())
    dataset = COCO(str(out / "annotations.json"))  # what labelling tools import
    assert dataset.getImgIds() == [42] and dataset.imgs[42]["file_name"] == "000000000042.png"
    assert len(dataset.getCatIds()) == 80 and dataset.cats[1]["name"] == "person"
    annotations = dataset.loadAnns(dataset.getAnnIds())
    assert 0 < len(annotations) <= len(result["detections"])
    for annotation in annotations:
        assert isinstance(annotation["segmentation"], list) and annotation["iscrowd"] == 0
        assert dataset.annToMask(annotation).sum() > 0  # pycocotools rasterises every polygon
    with open(out / "detections.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(result["detections"])
    assert [r["class_name"] for r in rows] == [d["class_name"] for d in result["detections"]]
    assert {r["image_id"] for r in rows} == {"42"} and rows[0]["image"].endswith("000000000042.png")
