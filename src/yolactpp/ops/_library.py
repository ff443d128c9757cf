"""Where compiled op libraries live, and whether one was built for the torch running now.

Two places, tried in this order: the build cache of ``yolactpp build-ops`` (one folder per torch
version and source hash, under ``$YOLACTPP_OPS_CACHE`` or ``~/.cache/yolactpp/ops``), then the
``yolactpp._C`` library shipped in the package (compiled by ``pip install`` or carried by a wheel).
Every build records the torch (and CUDA) version it was compiled against in the library file;
the record is read from the file, without loading it, so a library built for another torch is
never loaded (no undefined-symbol error, no crash) and the reason says which torch it wants.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from yolactpp.ops import _build_config

__all__ = [
    "CACHE_ENV",
    "Candidate",
    "build_dir",
    "cache_root",
    "candidates",
    "mismatch",
    "read_build_record",
]

#: Environment variable that relocates the build cache of ``yolactpp build-ops``.
CACHE_ENV = "YOLACTPP_OPS_CACHE"
#: File name of a cached build (``torch.utils.cpp_extension.load`` names it after the extension).
CACHED_NAME = "yolactpp_ops"
#: Written by ``yolactpp build-ops`` once the library loaded; a folder without it holds no finished build.
COMPLETE_MARKER = "complete"
_RECORD_TAG = b"yolactpp-build-record:"


@dataclass(frozen=True)
class Candidate:
    """A compiled library that may serve the ops: its path and where it comes from."""

    path: Path
    origin: str  # "build cache" or "package"


def cache_root() -> Path:
    """``$YOLACTPP_OPS_CACHE``, else ``$XDG_CACHE_HOME/yolactpp/ops`` (``~/.cache/yolactpp/ops``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "yolactpp" / "ops"


def build_dir() -> Path:
    """The cache folder for this torch and these op sources: a build is made once per torch version."""
    tag = "".join(c if c.isalnum() or c in ".+_-" else "_" for c in torch.__version__)
    return cache_root() / f"torch-{tag}-{_build_config.sources_digest()}"


def _packaged() -> Path | None:
    from importlib import util

    spec = util.find_spec("yolactpp._C")
    return None if spec is None or spec.origin is None else Path(spec.origin)


def candidates() -> list[Candidate]:
    """Existing libraries in the order they are tried: this torch's cached build, then the packaged one."""
    found = []
    cached = build_dir() / f"{CACHED_NAME}.so"
    if cached.is_file() and (cached.parent / COMPLETE_MARKER).is_file():  # not a build still running
        found.append(Candidate(cached, "build cache"))
    packaged = _packaged()
    if packaged is not None:
        found.append(Candidate(packaged, "package"))
    return found


def read_build_record(path: Path) -> dict[str, str] | None:
    """The ``torch=...;cuda=...;`` record compiled into a library (see ``_ops/module.cpp``), or None."""
    try:
        with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = data.find(_RECORD_TAG)
            if start < 0:
                return None
            end = data.find(b"\0", start)
            raw = data[start + len(_RECORD_TAG) : end if end >= 0 else start + 256]
    except (OSError, ValueError):
        return None
    fields = (item.split("=", 1) for item in raw.decode("ascii", "replace").split(";") if "=" in item)
    return {key: value for key, value in fields}


def mismatch(path: Path) -> str | None:
    """Why the library at ``path`` must not be loaded into this torch, or None when it fits."""
    record = read_build_record(path)
    if record is None or "torch" not in record:
        return "it carries no build record (built by an older yolactpp?)"
    if record["torch"] != torch.__version__:
        return f"it was built for torch {record['torch']}, this is torch {torch.__version__}"
    cuda = record.get("cuda", "none")
    if cuda != "none" and cuda != str(torch.version.cuda):
        return f"it was built for CUDA {cuda}, this torch uses CUDA {torch.version.cuda}"
    return None
