"""Shared fixtures: deterministic oracle checkpoints (generated once per session) and models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.oracle.checkpoints import write_checkpoint

torch.set_num_threads(2)
# Any Ray instance a test starts (here or in a subprocess) uses the loopback address as its node
# address, so it binds to and talks over 127.0.0.1 only. Ray reads this when it is first imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``cuda`` skip (with one shared reason) where no CUDA device is visible."""
    if item.get_closest_marker("cuda") is not None and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


@pytest.fixture(scope="session")
def checkpoint(checkpoint_dir: Path):
    """``checkpoint(config, seed=0)`` -> path of the oracle checkpoint, generated on first use."""

    def make(config: str, seed: int = 0) -> Path:
        directory = checkpoint_dir / f"seed{seed}"
        return write_checkpoint(config, directory, seed)

    return make


# -- user-surface fixtures (results, CLI, docs): one small model and its predictions, shared ------
@pytest.fixture(scope="session")
def v1_checkpoint(checkpoint) -> Path:
    """The YOLACT ResNet-50 oracle checkpoint (the fastest of the six)."""
    return checkpoint("yolact_resnet50")


@pytest.fixture(scope="session")
def v1_model(v1_checkpoint: Path):
    from yolactpp import YolactPP

    return YolactPP.from_pretrained(v1_checkpoint)


@pytest.fixture(scope="session")
def landscape_path() -> Path:
    from tests.oracle.compare import image_path

    return image_path("landscape_1280x720")


@pytest.fixture(scope="session")
def square_path() -> Path:
    from tests.oracle.compare import image_path

    return image_path("square_550x550")


@pytest.fixture(scope="session")
def landscape_det(v1_model, landscape_path: Path):
    """``v1_model.predict(landscape image)``, all 100 detections (treat as read-only)."""
    return v1_model.predict(landscape_path)


@pytest.fixture(scope="session")
def square_det(v1_model, square_path: Path):
    """``v1_model.predict(square image)``, all 100 detections (treat as read-only)."""
    return v1_model.predict(square_path)


# -- export fixtures: the small YOLACT++-shaped model of tests/test_export.py, exported once -------
@pytest.fixture(scope="session")
def small_pp_model():
    """The miniature YOLACT++ of ``tests.test_export.small_model`` (DCN, mask re-scoring, 96 px)."""
    from tests.test_export import small_model

    return small_model()


@pytest.fixture(scope="session")
def small_pp_pt2(small_pp_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_pp_model`` as a real AOTInductor package (export checks it in a child process first),
    compiled once per session for every ``pt2_package`` test: the compile costs 1-3 minutes here."""
    return small_pp_model.export(tmp_path_factory.mktemp("small_pp_pt2") / "small.pt2", format="pt2")


@pytest.fixture(scope="session")
def small_pp_onnx(small_pp_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_pp_model`` exported to ONNX with the default settings, shared by every export test."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return small_pp_model.export(tmp_path_factory.mktemp("small_pp_export") / "small.onnx", format="onnx")
