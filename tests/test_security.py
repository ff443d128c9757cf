"""Nothing but tensors is ever unpickled: a checkpoint whose pickle would run code is refused unrun."""

from __future__ import annotations

import os
import pickle
import shlex
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import yolactpp
from yolactpp import CheckpointError, YolactPP


class _RunsCode:
    """Unpickling this calls ``os.system(touch <marker>)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def write_malicious_checkpoint(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A ``.pth`` (zip, or legacy raw pickle) that runs ``touch marker`` if fully unpickled."""
    payload = OrderedDict([("proto_net.0.weight", torch.zeros(1)), ("evil", _RunsCode(marker))])
    if legacy:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    else:
        torch.save(payload, path)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_code_running_pickle_is_refused(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    path = write_malicious_checkpoint(tmp_path / "yolact_resnet50_54_800000.pth", marker, legacy)
    with pytest.raises(CheckpointError, match="refusing to load"):
        YolactPP.from_pretrained(path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        yolactpp.convert(path, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_the_probe_really_runs_code_when_unpickled_unsafely(tmp_path: Path) -> None:
    """Guards the test above: the same file does create the marker under a full unpickle."""
    marker = tmp_path / "pwned"
    path = write_malicious_checkpoint(tmp_path / "x.pth", marker, legacy=True)
    with open(path, "rb") as f:
        pickle.load(f)  # the unsafe load the library never does
    assert marker.exists()


@pytest.mark.parametrize("data", [bytes(range(256)) * 16, b"\x80\x02" + bytes(200), b"plain text, not a checkpoint"])
def test_random_bytes_are_called_not_a_checkpoint(tmp_path: Path, data: bytes) -> None:
    """Garbage is a bad file, not an attack: the message must not claim it could run code."""
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    path.write_bytes(data)
    with pytest.raises(CheckpointError) as info:
        YolactPP.from_pretrained(path)
    message = str(info.value)
    assert "is not a readable PyTorch checkpoint" in message and str(path) in message
    assert "could run code" not in message and "weights_only" not in message


def test_a_url_is_not_taken_for_a_path() -> None:
    with pytest.raises(yolactpp.YolactppError, match="is a URL; from_pretrained does not download URLs"):
        YolactPP.from_pretrained("https://example.com/yolact_base_54_800000.pth")
