"""What a build of the native ops compiles and with which flags; shared by setup.py and ``yolactpp build-ops``.

Standard library only: setup.py loads this file by path, before torch or yolactpp may be importable.
Sources are chosen by folder, as in torchvision: ``<op>/<op>.cpp`` (schema, checks, shared driver)
and everything else outside a ``cuda/`` folder (``cpu/``, ``autocast/``) is built always; the files
in a ``cuda/`` folder (and any ``.cu`` file) only in a CUDA build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "OPS_DIR",
    "build_defines",
    "cuda_arch_list",
    "cxx_flags",
    "is_cuda_source",
    "locate_cuda_home",
    "nvcc_flags",
    "op_sources",
    "sources_digest",
    "switch",
]

#: The C++/CUDA sources, inside the installed package (src/yolactpp/_ops in a checkout).
OPS_DIR = Path(__file__).resolve().parent.parent / "_ops"
_SOURCE_SUFFIXES = (".cpp", ".cu")
_ALL_SUFFIXES = (".cpp", ".cu", ".h", ".cuh")
_SM = re.compile(r"^(?:sm|compute)_(\d+)([a-z]?)$")
_ARCH = re.compile(r"^(\d+)\.(\d+)([a-z]?)(\+PTX)?$")


def is_cuda_source(path: Path, root: Path = OPS_DIR) -> bool:
    """Whether a source belongs to the CUDA build only: it lies in a ``cuda/`` folder, or is a ``.cu`` file."""
    return path.suffix == ".cu" or "cuda" in path.relative_to(root).parts[:-1]


def op_sources(cuda: bool, root: Path = OPS_DIR) -> list[str]:
    """The translation units of a CPU build, plus those of the CUDA build when ``cuda``; sorted posix paths."""
    found = sorted(p for p in root.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file())
    return [p.as_posix() for p in found if cuda or not is_cuda_source(p, root)]


def sources_digest(root: Path = OPS_DIR) -> str:
    """A short hash of every source and header: a cached build is reused only for identical sources."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in _ALL_SUFFIXES and p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def cxx_flags() -> list[str]:
    """Host compiler flags: optimised, no debug info, no contraction (the FastNMS kernels must equal the reference)."""
    return ["-O3", "-g0", "-ffp-contract=off"] if sys.platform != "win32" else ["/O2", "/fp:precise"]


def nvcc_flags() -> list[str]:
    return ["-O3"]


def build_defines(torch_version: str, cuda_version: str | None) -> list[str]:
    """``-D`` flags recording the torch (and CUDA) the build is for; ``module.cpp`` turns them into the build record.

    The values are passed as bare tokens (quotes would not survive ninja's shell) and stringified in C++,
    so they must be plain version strings.
    """
    cuda = cuda_version or "none"
    for value in (torch_version, cuda):
        if not re.fullmatch(r"[A-Za-z0-9.+_]+", value):
            raise ValueError(f"cannot record the version {value!r} in the build")
    return [f"-DYOLACTPP_BUILD_TORCH={torch_version}", f"-DYOLACTPP_BUILD_CUDA={cuda}"]


def _sort_key(arch: str) -> tuple[int, int, str]:
    match = _ARCH.match(arch)
    assert match is not None
    return int(match.group(1)), int(match.group(2)), match.group(3)


def cuda_arch_list(torch_archs: Iterable[str], requested: str | None = None) -> str | None:
    """TORCH_CUDA_ARCH_LIST for a build: ``requested`` as given, else torch's own architectures.

    ``torch_archs`` is ``torch.cuda.get_arch_list()`` (``sm_86``, ``sm_90a``, ``sm_120``, ...); entries
    that are not ``sm_<digits>[letter]`` are skipped rather than failing the build, and the newest one
    also gets PTX. Returns None when nothing usable is left.
    """
    if requested and requested.strip():
        return requested.strip()
    archs = set()
    for name in torch_archs:
        match = _SM.match(str(name).strip())
        if match and match.group(0).startswith("sm_") and len(match.group(1)) >= 2:
            digits, suffix = match.group(1), match.group(2)
            archs.add(f"{int(digits[:-1])}.{digits[-1]}{suffix}")
    if not archs:
        return None
    ordered = sorted(archs, key=_sort_key)
    return ";".join(ordered) + "+PTX"


def switch(name: str, default: bool) -> bool:
    """A boolean environment switch: 0/false/no/off mean off, anything else on."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


def locate_cuda_home() -> None:
    """Point CUDA_HOME at a toolkit with headers when it is unset and torch's guess has none.

    torch guesses the toolkit from ``which nvcc``; an nvcc wrapper script in /usr/local/bin then
    yields /usr/local, which lacks cuda_runtime_api.h. Must run before cpp_extension is imported.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    guesses = [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else []
    for home in [*guesses, "/usr/local/cuda"]:
        if os.path.exists(os.path.join(home, "include", "cuda_runtime_api.h")):
            os.environ["CUDA_HOME"] = home
            return
