"""Where ``YolactPP.from_pretrained(x)`` reads weights from: every source becomes one
:class:`~yolactpp.checkpoint.LoadedWeights` (config + state dict), tried in this order:

1. an existing file: an original ``.pth`` checkpoint (a ``model.safetensors`` file: its folder);
2. an existing folder: the own format (``config.json`` + ``model.safetensors``);
3. a published zoo name (``weights_manifest.json``): download, verify, convert once, read;
4. ``"owner/name"``: an own-format repository on the Hugging Face Hub;
5. anything else: a clear error (missing path, or an unknown name with close matches).

The model is then built from the weights in one place, :func:`yolactpp.builder.build_network`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

from yolactpp import hub, manifest, serialization
from yolactpp._facts import is_url
from yolactpp.checkpoint import CheckpointError, LoadedWeights, read_original, with_class_names
from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, MissingFileError
from yolactpp.registry import as_model_config

__all__ = ["read_weights"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".json", ".bin", ".ckpt")
logger = logging.getLogger(__name__)


def _read_zoo(name: str, revision: str | None, force: bool) -> LoadedWeights:
    target = hub.pretrained_dir(name, revision=revision, force_download=force)
    try:
        return serialization.read_pretrained_dir(target, f"{name} ({target / serialization.WEIGHTS_NAME})")
    except CheckpointError as exc:  # a damaged derived copy: rebuild it from the verified download
        logger.warning("yolactpp: rebuilding the converted cache %s (%s)", target, exc)
        shutil.rmtree(target, ignore_errors=True)
        target = hub.pretrained_dir(name, revision=revision, force_download=False)
        return serialization.read_pretrained_dir(target, f"{name} ({target / serialization.WEIGHTS_NAME})")


def _read_own_format(
    name_or_path: str | os.PathLike[str], revision: str | None, force_download: bool
) -> LoadedWeights | None:
    """Weights that carry their config (own-format folder, zoo name, hub repo); ``None`` for an
    original ``.pth`` file."""
    if is_url(name_or_path):
        raise InvalidArgumentError(
            f"{name_or_path} is a URL; from_pretrained does not download URLs: download the file and pass its "
            "path, or pass a published model name (listed by `yolactpp models`) or an 'owner/name' Hugging Face "
            "Hub repo"
        )
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix == ".safetensors" or path.name == serialization.CONFIG_NAME:
            return serialization.read_pretrained_dir(path.parent)
        return None
    if path.is_dir():
        return serialization.read_pretrained_dir(path)
    if not isinstance(name_or_path, str):
        raise MissingFileError(f"no file or directory at {name_or_path}")
    name = name_or_path
    if name in manifest.load_manifest():
        return _read_zoo(name, revision, force_download)
    looks_like_path = path.suffix in _FILE_SUFFIXES or name.startswith((".", "~")) or ".." in name
    if _REPO_ID.match(name) and not looks_like_path:
        return serialization.read_pretrained_dir(hub.download_repo(name, revision=revision, force_download=force_download))
    if looks_like_path or "/" in name or os.sep in name:
        raise MissingFileError(f"no file or directory at {name!r} (from_pretrained got a path that does not exist)")
    manifest.get_entry(name)  # not published: raises UnknownModelError with close names
    raise AssertionError("unreachable")  # pragma: no cover


def read_weights(
    name_or_path: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    force_download: bool = False,
) -> LoadedWeights:
    """Read ``name_or_path`` (see the module docstring) into config + state dict.

    ``config`` (a :class:`ModelConfig` or a registered name) replaces the stored or inferred one;
    ``class_names`` names the classes (their count must match the weights).
    """
    cfg = as_model_config(config)
    weights = _read_own_format(name_or_path, revision, force_download)
    if weights is None:
        return read_original(Path(name_or_path), cfg, class_names)
    if cfg is not None:
        weights = dataclasses.replace(weights, config=cfg)
    return with_class_names(weights, class_names)
