"""The converted-weights cache: each zoo model's original ``.pth`` kept in the own format.

A zoo model is converted once per hub commit (or, outside the hub-cache layout, per file content)
into ``cache_dir()/converted/v<FORMAT_VERSION>/<name>/<commit or sha256-digest>/``:
``config.json`` + ``model.safetensors``, with the original's sha256, hub repo, revision and commit
as provenance. Later loads read the copy and never unpickle the ``.pth`` again. This module only
places, checks and writes copies; :mod:`yolactpp.pretrained` decides when (after the one strict
load of the original).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from yolactpp.config import ModelConfig
from yolactpp.hub import cache_dir
from yolactpp.manifest import ManifestEntry
from yolactpp.serialization import CONFIG_NAME, FORMAT_VERSION, WEIGHTS_NAME, write_pretrained

__all__ = ["is_valid", "location", "write"]


def location(name: str, commit: str | None, sha256: str | None) -> Path:
    """Where the converted copy of zoo model ``name`` at hub ``commit`` (else of content ``sha256``) lives."""
    key = commit if commit is not None else f"sha256-{sha256}"
    return cache_dir() / "converted" / f"v{FORMAT_VERSION}" / name / key


def is_valid(target: Path, entry: ManifestEntry) -> bool:
    """Whether ``target`` holds a complete copy made from the file the manifest expects.

    A checksum learnt after the conversion must still hold for the file the copy was made from.
    """
    try:
        meta = json.loads((target / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not (target / WEIGHTS_NAME).is_file():
        return False
    source_sha = (meta.get("provenance") or {}).get("source_sha256") if isinstance(meta, dict) else None
    return entry.sha256 is None or source_sha == entry.sha256


def write(
    target: Path,
    entry: ManifestEntry,
    config: ModelConfig,
    state: Mapping[str, torch.Tensor],
    provenance: Mapping[str, Any],
) -> Path:
    """Write a converted copy atomically: staged beside ``target``, then renamed into place (a
    concurrent converter that got there first wins; its copy is equally good)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_pretrained(staging, config, state, provenance=provenance)
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:
            if not is_valid(target, entry):  # not a concurrent converter that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
