"""Fixtures of the training tests: a small generated shapes dataset and a tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.train.tiny import tiny_config


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
