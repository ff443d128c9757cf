"""COCO instances: masks as pycocotools decodes them, the class mapping, crowds, and every malformed input."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from tests.train.conftest import tiny_coco, write_coco
from yolactpp.config import PreprocessConfig
from yolactpp.errors import DatasetError, DatasetWarning, MissingFileError
from yolactpp.train.coco_dataset import CocoDataset, SampleKey
from yolactpp.train.shapes import ShapesDataset

CONFIG = PreprocessConfig(size=64)


def test_masks_boxes_labels_match_pycocotools(shapes: ShapesDataset) -> None:
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG, augment=False)
    coco = COCO(str(shapes.annotations))
    assert data.class_names == ("circle", "rectangle", "triangle")
    assert data.category_ids == (3, 7, 9)
    kinds = {"polygon": 0, "rle": 0, "crowd": 0}
    for i, image_id in enumerate(data.image_ids):
        sample = data.load(i)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        anns = [a for a in anns if not a["iscrowd"]] + [a for a in anns if a["iscrowd"]]  # crowds last
        assert sample.num_crowds == sum(a["iscrowd"] for a in anns)
        for j, ann in enumerate(anns):
            np.testing.assert_array_equal(sample.masks[j], coco.annToMask(ann))
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(sample.boxes[j], [x, y, x + w, y + h])
            expected = -1 if ann["iscrowd"] else data.category_ids.index(ann["category_id"])
            assert sample.labels[j] == expected
            kinds["crowd" if ann["iscrowd"] else "polygon" if isinstance(ann["segmentation"], list) else "rle"] += 1
    assert min(kinds.values()) > 0, kinds  # every encoding was exercised


def test_validation_path_is_inference_preprocessing(shapes: ShapesDataset) -> None:
    from yolactpp.preprocess import preprocess, to_rgb_array

    data = CocoDataset(shapes.annotations, shapes.images, CONFIG, augment=False)
    image, targets = data[0]
    expected = preprocess([to_rgb_array(data.image(0).path)], CONFIG).tensor[0]
    assert torch.equal(image, expected)
    sample = data.load(0)
    scale = np.array([96, 80, 96, 80], dtype=np.float64)
    np.testing.assert_allclose(targets.boxes.numpy(), sample.boxes / scale, rtol=1e-6)
    assert targets.masks.shape == (len(sample.labels), 64, 64)
    assert set(torch.unique(targets.masks).tolist()) <= {0.0, 1.0}
    assert torch.equal(data[0][0], data[SampleKey(0, 7, 9)][0])  # no randomness without augmentation


def test_tiny_file_classes_crowds_and_unannotated_images(tmp_path: Path) -> None:
    path = write_coco(tmp_path, tiny_coco())
    data = CocoDataset(path, tmp_path, CONFIG, augment=False)
    assert data.class_names == ("b", "a") and data.category_ids == (2, 5)  # sorted by id
    assert data.image_ids == (1, 2)  # image 3 has no annotation: left out, as the original does
    assert data.instances.unannotated_images == 1
    one = data.load(0)
    assert one.labels.tolist() == [1, -1] and one.num_crowds == 1
    assert one.masks[1].sum() == 30 and one.masks[1][5:15, 10:13].all()
    kept = CocoDataset(path, tmp_path, CONFIG, augment=False, include_unannotated=True)
    assert kept.image_ids == (1, 2, 3)
    _, targets = kept[2]
    assert targets.boxes.shape == (0, 4) and targets.masks.shape == (0, 64, 64)


Mutation = Callable[[dict[str, Any], Path], None]


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting e.g. "annotations.0.bbox" to ``value``."""

    def apply(data: dict[str, Any], folder: Path) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _garbage_image(data: dict[str, Any], folder: Path) -> None:
    (folder / "broken.png").write_bytes(b"not an image at all")
    data["images"][0]["file_name"] = "broken.png"


# (mutation, reason key, text naming the id in the message)
CASES: dict[str, tuple[Mutation, str, str]] = {
    "missing image": (_set("images.0.file_name", "gone.png"), "missing_image", "image 1 (gone.png)"),
    "unreadable image": (_garbage_image, "unreadable_image", "image 1 (broken.png)"),
    "size mismatch": (_set("images.1.width", 41), "image_size_mismatch", "image 2 (two.png)"),
    "duplicate image id": (_set("images.2.id", 2), "duplicate_image_id", "image 2"),
    "duplicate annotation id": (_set("annotations.2.id", 11), "duplicate_annotation_id", "annotation 11"),
    "unknown image": (_set("annotations.2.image_id", 99), "unknown_image", "annotation 13"),
    "unknown category": (_set("annotations.2.category_id", 4), "unknown_category", "annotation 13 (image 2, two.png)"),
    "malformed box": (_set("annotations.2.bbox", [1, 2, 3]), "malformed_box", "annotation 13"),
    "box outside": (_set("annotations.2.bbox", [30, 10, 15, 15]), "box_outside_image", "annotation 13"),
    "zero-area box": (_set("annotations.2.bbox", [20, 10, 0, 15]), "zero_area_box", "annotation 13"),
    "short polygon": (
        _set("annotations.2.segmentation", [[20, 10, 35, 10]]),
        "malformed_segmentation",
        "annotation 13",
    ),
    "bad RLE string": (
        _set("annotations.2.segmentation", {"size": [30, 40], "counts": "!!"}),
        "malformed_segmentation",
        "annotation 13",
    ),
    "RLE size": (
        _set("annotations.0.segmentation", {"size": [40, 30], "counts": [1200]}),
        "malformed_segmentation",
        "annotation 12",
    ),
    "RLE length": (
        _set("annotations.0.segmentation", {"size": [30, 40], "counts": [5, 10]}),
        "malformed_segmentation",
        "annotation 12",
    ),
    "zero-area mask": (
        _set("annotations.2.segmentation", [[20, 10, 20.2, 10, 20.1, 10.2]]),
        "zero_area_mask",
        "annotation 13",
    ),
    "list as image id": (_set("annotations.2.image_id", [2]), "malformed_annotation", "annotation 13"),
    "string crowd flag": (_set("annotations.2.iscrowd", "no"), "malformed_annotation", "annotation 13"),
    "no segmentation": (
        lambda d, f: d["annotations"][2].pop("segmentation"),
        "malformed_segmentation",
        "annotation 13",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_input_is_named_or_skipped_and_counted(case: str, tmp_path: Path) -> None:
    mutate, reason, where = CASES[case]
    data = copy.deepcopy(tiny_coco())
    mutate(data, tmp_path)
    path = write_coco(tmp_path, data)
    with pytest.raises(DatasetError) as info:
        CocoDataset(path, tmp_path, CONFIG)
    message = str(info.value)
    assert str(path) in message and where in message, message
    assert len(info.value.problems) == 1
    with pytest.warns(DatasetWarning, match="skipped 1 x") as record:
        skipping = CocoDataset(path, tmp_path, CONFIG, skip_bad=True)
    assert len(record) == 1
    assert dict(skipping.skipped) == {reason: 1}
    assert len(skipping) >= 1 and skipping[0][1].labels.numel() >= 1


def test_all_problems_are_listed_at_once(tmp_path: Path) -> None:
    data = tiny_coco()
    data["annotations"][1]["category_id"] = 77
    data["annotations"][2]["bbox"] = [0, 0, 0, 0]
    path = write_coco(tmp_path, data)
    with pytest.raises(DatasetError, match=r"2 problem\(s\)") as info:
        CocoDataset(path, tmp_path, CONFIG)
    assert "annotation 11" in str(info.value) and "annotation 13" in str(info.value)
    assert "skip_bad=True" in str(info.value)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(categories=[{"id": 1, "name": "x"}, {"id": 1, "name": "y"}]), "duplicate category id 1"),
        (lambda d: d.pop("annotations"), "missing 'annotations'"),
        (lambda d: d.update(categories=[]), "'categories' must be a non-empty list"),
    ],
)
def test_structural_faults_raise_even_when_skipping(
    edit: Callable[[dict[str, Any]], None], match: str, tmp_path: Path
) -> None:
    data = tiny_coco()
    edit(data)
    path = write_coco(tmp_path, data)
    with pytest.raises(DatasetError, match=match):
        CocoDataset(path, tmp_path, CONFIG, skip_bad=True)


def test_missing_files_and_bad_json(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="annotation file not found"):
        CocoDataset(tmp_path / "none.json", tmp_path, CONFIG)
    path = write_coco(tmp_path, tiny_coco())
    with pytest.raises(MissingFileError, match="image folder not found"):
        CocoDataset(path, tmp_path / "nowhere", CONFIG)
    path.write_text("{not json")
    with pytest.raises(DatasetError, match=f"{path}: not a valid JSON file"):
        CocoDataset(path, tmp_path, CONFIG)


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    data = tiny_coco()
    for ann in data["annotations"]:
        ann["category_id"] = 99
    path = write_coco(tmp_path, data)
    with warnings.catch_warnings(), pytest.raises(DatasetError, match="no usable image"):
        warnings.simplefilter("ignore", DatasetWarning)
        CocoDataset(path, tmp_path, CONFIG, skip_bad=True)


def test_file_without_annotations_validates_but_does_not_train(tmp_path: Path) -> None:
    data = tiny_coco()
    data["annotations"] = []
    path = write_coco(tmp_path, data)
    assert len(CocoDataset(path, tmp_path, CONFIG, augment=False)) == 3  # all images, as the original
    with pytest.raises(DatasetError, match="no image has an annotation to train on"):
        CocoDataset(path, tmp_path, CONFIG)


def test_image_that_stops_decoding_names_the_file(tmp_path: Path) -> None:
    path = write_coco(tmp_path, tiny_coco())
    data = CocoDataset(path, tmp_path, CONFIG)
    (tmp_path / "two.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DatasetError, match=r"image 2 \(.*two\.png\): cannot be read"):
        data[1]
    json.loads(path.read_text())  # the user's files are untouched apart from the one broken here
