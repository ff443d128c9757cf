"""The loader: batches independent of the worker count, per-epoch order from the seed, resume at
any iteration, and a sample failing in a worker surfacing as the dataset's own error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.train.conftest import tiny_coco, write_coco
from yolactpp.config import PreprocessConfig
from yolactpp.errors import DatasetError, DatasetWarning, InvalidArgumentError
from yolactpp.train.coco_dataset import CocoDataset
from yolactpp.train.loader import Batch, collate, make_loader
from yolactpp.train.shapes import ShapesDataset

# Large enough that torch resizes with several threads (tests run with 2): workers use one.
CONFIG = PreprocessConfig(size=128)


def _same(a: list[Batch], b: list[Batch]) -> bool:
    return len(a) == len(b) and all(
        torch.equal(x, y)
        and all(
            torch.equal(p.boxes, q.boxes) and torch.equal(p.masks, q.masks) and torch.equal(p.labels, q.labels)
            for p, q in zip(t, u)
        )
        for (x, t), (y, u) in zip(a, b)
    )


def _take(iterator, n: int) -> list[Batch]:  # type: ignore[no-untyped-def]
    return [batch for _, batch in zip(range(n), iterator)]


def test_two_workers_give_the_batches_of_none(shapes: ShapesDataset) -> None:
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG)
    single = make_loader(data, batch_size=3, workers=0, seed=4)
    assert len(single) == 4
    serial = _take(single.batches(), 10)  # crosses into epochs 1 and 2
    parallel_loader = make_loader(data, batch_size=3, workers=2, seed=4)
    epoch0, epoch1 = list(parallel_loader), list(parallel_loader)
    assert _same(serial[:4], epoch0) and _same(serial[4:8], epoch1)
    images, targets = epoch0[0]
    assert images.shape == (3, 3, 128, 128) and images.dtype == torch.float32 and len(targets) == 3
    assert _same(_take(parallel_loader.batches(start_iteration=6), 3), serial[6:9])  # resume mid-epoch
    assert not _same(epoch0[:1], epoch1[:1])  # reshuffled and re-augmented each epoch
    assert _same(_take(parallel_loader.batches(), 2), serial[:2])  # after leaving a run mid-epoch


def test_order_follows_the_seed_and_shuffle(shapes: ShapesDataset) -> None:
    data = CocoDataset(shapes.annotations, shapes.images, CONFIG, augment=False)
    fixed = [t[0].boxes for _, ts in make_loader(data, 4, seed=0, shuffle=False) for t in [ts]]
    expected = [data[i][1].boxes for i in (0, 4, 8)]
    assert all(torch.equal(a, b) for a, b in zip(fixed, expected))
    orders = {
        tuple(t[0].boxes.flatten().tolist()) for s in range(4) for _, t in [next(iter(make_loader(data, 4, seed=s)))]
    }
    assert len(orders) > 1
    loader = make_loader(data, 4, seed=0)
    epochs = [[tuple(t.boxes.flatten().tolist()) for _, ts in loader for t in ts] for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) and epochs[0] != epochs[1]  # same images, new order
    assert len(make_loader(data, 5, drop_last=False)) == 3 and len(make_loader(data, 5)) == 2


def test_worker_failure_is_the_datasets_error(shapes: ShapesDataset, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(shapes.images.parent, folder)
    data = CocoDataset(folder / "annotations.json", folder / "images", CONFIG)
    broken = data.image(5).path
    broken.write_bytes(b"garbage")
    with pytest.raises(DatasetError) as info:
        for _ in make_loader(data, batch_size=4, workers=1, seed=0, shuffle=False):
            pass
    message = str(info.value)
    assert str(broken) in message and "cannot be read" in message and "Traceback" not in message
    skipping = CocoDataset(
        folder / "annotations.json", folder / "images", CONFIG, skip_bad=True, check_image_files=False
    )
    with pytest.warns(DatasetWarning, match=str(broken)):
        sizes = [len(targets) for _, targets in make_loader(skipping, batch_size=4, workers=0, seed=0, shuffle=False)]
    assert sizes == [4, 3, 4]


def test_bad_arguments(tmp_path: Path) -> None:
    data = CocoDataset(write_coco(tmp_path, tiny_coco()), tmp_path, CONFIG)
    for kwargs in ({"batch_size": 0}, {"batch_size": 2, "workers": -1}, {"batch_size": 2, "seed": -3}):
        with pytest.raises(InvalidArgumentError):
            make_loader(data, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="fewer than one batch"):
        next(make_loader(data, batch_size=3).batches())
    with pytest.raises(InvalidArgumentError, match="empty batch"):
        collate([])
