"""Deterministic synthetic checkpoints of the parity oracle (rule in tests/data/oracle/ORACLE.md §1).

Every tensor is a pure function of (key name, seed, per-key parameters), generated with a vectorised
splitmix64 stream, so tests can rebuild any of the six original checkpoints without the released
weights.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path(__file__).resolve().parent.parent / "data" / "oracle"
CONFIGS = (
    "yolact_resnet50",
    "yolact_darknet53",
    "yolact_base",
    "yolact_im700",
    "yolact_plus_resnet50",
    "yolact_plus_base",
)

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@cache
def key_manifest(config: str) -> dict[str, Any]:
    """The oracle's key manifest of one config (names, shapes, generator parameters)."""
    return json.loads((DATA / "keys" / f"{config}.json").read_text())


def key_seed(seed: int, name: str) -> np.uint64:
    digest = hashlib.sha256(f"yolact-oracle/{seed}/{name}".encode()).digest()
    return np.uint64(int.from_bytes(digest[:8], "little"))


def uniform_stream(seed_value: np.uint64, n: int) -> np.ndarray:
    """Numbers r in [-1, 1) from splitmix64 outputs 1..n of the generator seeded with `seed_value`."""
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        s = seed_value + i * _GOLDEN_GAMMA
        z = (s ^ (s >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * (2.0**-53)
    return 2.0 * u - 1.0


def tensor_for(entry: dict[str, Any], seed: int) -> torch.Tensor:
    """The tensor the rule assigns to one manifest entry."""
    shape = tuple(entry["shape"])
    if entry.get("zeros"):
        return torch.zeros(shape, dtype=torch.int64)
    n = int(np.prod(shape)) if shape else 1
    r = uniform_stream(key_seed(seed, entry["name"]), n)
    center, half = entry["center"], entry["half"]
    if isinstance(center, list):  # per-element: background logit of each anchor vs the rest
        is_bg = (np.arange(n) % 81) == 0
        center = np.where(is_bg, center[0], center[1])
        half = np.where(is_bg, half[0], half[1])
    values = (np.asarray(center, dtype=np.float64) + np.asarray(half, dtype=np.float64) * r).astype(np.float32)
    return torch.from_numpy(values.reshape(shape))


def make_state_dict(config: str, seed: int = 0) -> OrderedDict[str, torch.Tensor]:
    """The checkpoint of `config` for `seed`, in the original file's key order."""
    manifest = key_manifest(config)
    entries = manifest["keys"] + manifest.get("extra_checkpoint_keys", [])
    return OrderedDict((e["name"], tensor_for(e, seed)) for e in entries)


def tensor_bytes_sha256(state_dict: OrderedDict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in state_dict.values():
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_checkpoint(config: str, directory: Path, seed: int = 0) -> Path:
    """Write `<config>_54_800000.pth` like the original release files and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{config}_54_800000.pth"
    if not path.exists():
        torch.save(make_state_dict(config, seed), path)
    return path
