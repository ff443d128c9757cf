"""The synthetic shapes dataset: deterministic, valid COCO, large distinct objects, never overwrites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from yolactpp.errors import InvalidArgumentError
from yolactpp.train.coco_instances import read_coco_instances
from yolactpp.train.shapes import SHAPE_CATEGORY_IDS, main, make_shapes_dataset, make_shapes_splits


def test_same_seed_same_files_other_seed_differs(tmp_path: Path) -> None:
    a = make_shapes_dataset(tmp_path / "a", 4, seed=1, image_size=64)
    b = make_shapes_dataset(tmp_path / "b", 4, seed=1, image_size=64)
    c = make_shapes_dataset(tmp_path / "c", 4, seed=2, image_size=64)
    assert a.annotations.read_text() == b.annotations.read_text() != c.annotations.read_text()
    for name in ("000000.png", "000003.png"):
        assert (a.images / name).read_bytes() == (b.images / name).read_bytes()


def test_objects_are_large_valid_and_mixed(tmp_path: Path) -> None:
    made = make_shapes_dataset(tmp_path, 30, seed=0, image_size=(120, 100), crowd_fraction=0.3)
    data = json.loads(made.annotations.read_text())
    assert [c["id"] for c in data["categories"]] == list(SHAPE_CATEGORY_IDS)
    objects = [a for a in data["annotations"] if not a["iscrowd"]]
    crowds = [a for a in data["annotations"] if a["iscrowd"]]
    assert made.num_objects == len(objects) >= 30 and made.num_crowds == len(crowds) >= 3
    assert {a["category_id"] for a in objects} == set(SHAPE_CATEGORY_IDS)
    assert all(max(a["bbox"][2], a["bbox"][3]) >= 0.2 * 100 for a in objects)  # large: a fifth of the side or more
    assert any(isinstance(a["segmentation"], list) for a in objects) and any(
        isinstance(a["segmentation"], dict) for a in objects
    )
    assert all(isinstance(a["segmentation"]["counts"], list) for a in crowds)  # uncompressed, as COCO writes crowds
    coco = COCO(str(made.annotations))
    for ann in data["annotations"][:20]:  # area and box agree with the mask pycocotools decodes
        mask = coco.annToMask(ann)
        ys, xs = np.nonzero(mask)
        assert ann["area"] == mask.sum()
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    image = np.asarray(Image.open(made.images / "000000.png"))
    assert image.shape == (100, 120, 3) and image.std() > 10  # textured, not flat
    read = read_coco_instances(made.annotations, made.images)  # passes the dataset's own validation
    assert len(read.images) == 30 and read.skipped == {}


def test_splits_differ_and_nothing_is_overwritten(tmp_path: Path) -> None:
    train, val = make_shapes_splits(tmp_path, 3, 2, seed=0, image_size=48)
    assert train.num_images == 3 and val.num_images == 2
    assert train.annotations.parent.name == "train" and val.annotations.parent.name == "val"
    first = train.annotations.read_text()
    with pytest.raises(InvalidArgumentError, match="already holds a dataset"):
        make_shapes_dataset(tmp_path / "train", 3, seed=9, image_size=48)
    assert train.annotations.read_text() == first
    with pytest.raises(InvalidArgumentError, match="image_size"):
        make_shapes_dataset(tmp_path / "x", 3, image_size=8)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "out"), "--images", "3", "--val-images", "2", "--size", "48"]) == 0
    printed = capsys.readouterr().out
    assert "train/annotations.json (3 images" in printed and "val/annotations.json (2 images" in printed
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path / "out"), "--images", "3"])
    assert info.value.code == 2 and "already holds a dataset" in capsys.readouterr().err
