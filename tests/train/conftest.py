"""Training-data fixtures: generated shapes datasets (one with crowds, a small train/val split),
a hand-made COCO file, and a tiny untrained model for trainer tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.train.tiny import tiny_config
from yolactpp.train.shapes import ShapesDataset, make_shapes_dataset


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> ShapesDataset:
    """12 non-square images (96 x 80) with 1-3 shapes each; half of them carry a crowd region."""
    return make_shapes_dataset(tmp_path_factory.mktemp("shapes"), 12, seed=5, image_size=(96, 80), crowd_fraction=0.5)


def tiny_coco() -> dict[str, Any]:
    """Three 40 x 30 images (the last unannotated); categories 5 'a' and 2 'b' (so 'b' is class 0);
    a crowd RLE listed before a polygon on image 1, a polygon on image 2."""
    crowd_rle = {"size": [30, 40], "counts": [305, 10, 20, 10, 20, 10, 825]}  # columns 10-12, rows 5-14
    return {
        "images": [
            {"id": 1, "file_name": "one.png", "width": 40, "height": 30},
            {"id": 2, "file_name": "two.png", "width": 40, "height": 30},
            {"id": 3, "file_name": "empty.png", "width": 40, "height": 30},
        ],
        "categories": [{"id": 5, "name": "a"}, {"id": 2, "name": "b"}],
        "annotations": [
            {
                "id": 12,
                "image_id": 1,
                "category_id": 2,
                "iscrowd": 1,
                "bbox": [10, 5, 3, 10],
                "segmentation": crowd_rle,
            },
            {
                "id": 11,
                "image_id": 1,
                "category_id": 5,
                "iscrowd": 0,
                "bbox": [4, 6, 10, 8],
                "segmentation": [[4, 6, 14, 6, 14, 14, 4, 14]],
            },
            {
                "id": 13,
                "image_id": 2,
                "category_id": 2,
                "iscrowd": 0,
                "bbox": [20, 10, 15, 15],
                "segmentation": [[20, 10, 35, 10, 27, 25]],
            },
        ],
    }


def write_coco(folder: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as folder/instances.json beside the 40 x 30 PNGs of :func:`tiny_coco` (one, two, empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("one.png", "two.png", "empty.png"):
        path = folder / name
        if not path.exists():
            Image.fromarray(rng.integers(0, 255, size=(30, 40, 3), dtype=np.uint8)).save(path)
    path = folder / "instances.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="session")
def small_shapes(tmp_path_factory: pytest.TempPathFactory):
    """12 training and 6 validation shapes images of 64 x 64 pixels (train, val)."""
    from yolactpp.train.shapes import make_shapes_splits

    return make_shapes_splits(tmp_path_factory.mktemp("shapes"), 12, 6, seed=3, image_size=64)


@pytest.fixture
def tiny_model():
    """An untrained tiny YOLACT (2 classes, 64 px), the same weights every time."""
    from yolactpp import YolactPP

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return YolactPP(tiny_config())


def data_pair(split) -> tuple[Path, Path]:
    return split.annotations, split.images
