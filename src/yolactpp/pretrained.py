"""What ``YolactPP.from_pretrained(x)`` does with ``x``, in this order:

1. an existing file: an original ``.pth`` checkpoint (a ``model.safetensors`` file: its folder);
2. an existing folder: the own format (``config.json`` + ``model.safetensors``);
3. a published zoo name (``weights_manifest.json``): download, verify, convert once, load;
4. ``"owner/name"``: an own-format repository on the Hugging Face Hub;
5. anything else: a clear error (missing path, or an unknown name with close matches).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from yolactpp.checkpoint import CheckpointError
from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError, MissingFileError

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["load_pretrained"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".json", ".bin", ".ckpt")


def _as_config(config: ModelConfig | str | None) -> ModelConfig | None:
    if config is None or isinstance(config, ModelConfig):
        return config
    if isinstance(config, str):
        from yolactpp.registry import get_model_config

        return get_model_config(config)
    raise InvalidArgumentTypeError(f"config must be a ModelConfig or a model name, got {type(config).__name__}")


def _load_zoo(
    cls: type["YolactPP"], name: str, config: ModelConfig | None, revision: str | None, force: bool
) -> "YolactPP":
    import logging
    import shutil

    from yolactpp import hub, serialization

    target = hub.pretrained_dir(name, revision=revision, force_download=force)
    try:
        files = serialization.read_pretrained_dir(target)
    except CheckpointError as exc:  # a damaged derived copy: rebuild it from the verified download
        logging.getLogger(__name__).warning("yolactpp: rebuilding the converted cache %s (%s)", target, exc)
        shutil.rmtree(target, ignore_errors=True)
        target = hub.pretrained_dir(name, revision=revision, force_download=False)
        files = serialization.read_pretrained_dir(target)
    return serialization.build_model(cls, files, config, f"{name} ({target / serialization.WEIGHTS_NAME})")


def load_pretrained(
    cls: type["YolactPP"],
    name_or_path: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    *,
    revision: str | None = None,
    force_download: bool = False,
) -> "YolactPP":
    """Dispatch ``name_or_path`` to the right loader (see the module docstring)."""
    from yolactpp import hub, manifest, serialization

    if isinstance(name_or_path, str) and _URL.match(name_or_path):
        raise InvalidArgumentError(
            f"{name_or_path} is a URL; from_pretrained does not download URLs: download the file and pass its "
            "path, or pass a published model name (listed by `yolactpp models`) or an 'owner/name' Hugging Face "
            "Hub repo"
        )
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix == ".safetensors" or path.name == serialization.CONFIG_NAME:
            return serialization.load_pretrained_dir(cls, path.parent, _as_config(config))
        return cls.from_original_checkpoint(path, config)
    if path.is_dir():
        return serialization.load_pretrained_dir(cls, path, _as_config(config))
    if not isinstance(name_or_path, str):
        raise MissingFileError(f"no file or directory at {name_or_path}")
    name = name_or_path
    if name in manifest.load_manifest():
        return _load_zoo(cls, name, _as_config(config), revision, force_download)
    looks_like_path = path.suffix in _FILE_SUFFIXES or name.startswith((".", "~")) or ".." in name
    if _REPO_ID.match(name) and not looks_like_path:
        directory = hub.download_repo(name, revision=revision, force_download=force_download)
        return serialization.load_pretrained_dir(cls, directory, _as_config(config))
    if looks_like_path or "/" in name or os.sep in name:
        raise MissingFileError(f"no file or directory at {name!r} (from_pretrained got a path that does not exist)")
    manifest.get_entry(name)  # not published: raises UnknownModelError with close names
    raise AssertionError("unreachable")  # pragma: no cover
