"""Shared fixtures: deterministic oracle checkpoints (generated once per session) and models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.oracle.checkpoints import write_checkpoint

torch.set_num_threads(2)


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
