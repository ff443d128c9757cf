"""Runtimes for exported files: one class per runtime behind one interface, :class:`Runtime`.

A runtime opens a file (session creation), owns its execution settings (execution providers,
devices, thread counts: scoped to the runtime, never the process) and hands back the file's
string metadata. :class:`yolactpp.export.ExportedModel` runs the graph through it:

- :class:`~yolactpp.runtime.onnx.OnnxRuntime`: ``.onnx`` files on onnxruntime (float32, float16
  and the int8 files of ``YolactPP.quantize``; :mod:`yolactpp.runtime.int8` says whether this CPU
  makes int8 pay). No torch needed.
- :class:`~yolactpp.runtime.aoti.AotiRuntime`: ``.pt2`` AOTInductor packages on torch.

:func:`open_runtime` picks one by the file's content (a ``.pt2`` package is a zip archive).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from yolactpp.errors import MissingFileError

__all__ = ["Runtime", "open_runtime"]


class Runtime(Protocol):
    """An exported file opened for inference."""

    #: What executes the file: ``"onnxruntime"`` or ``"aoti"``.
    name: str
    #: Where it runs: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    device: str
    #: The file's string metadata (see :mod:`yolactpp.export.metadata`).
    metadata: dict[str, str]
    #: The graph's input / output names as the runtime reads them (None where it cannot tell).
    input_names: tuple[str, ...] | None
    output_names: tuple[str, ...] | None
    #: The shape of the ``images`` input (dimensions may be names), None where it cannot tell.
    image_shape: tuple[object, ...] | None

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """Run the graph: ``feeds`` in the graph's input order, the ``outputs`` named (in order)."""
        ...


def open_runtime(
    path: str | os.PathLike[str],
    *,
    device: str | None = None,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
) -> Runtime:
    """Open an exported file on the runtime its content calls for.

    ``device``: ``"cpu"`` (default for ``.onnx``), ``"cuda"`` / ``"cuda:N"``; a ``.pt2`` package
    defaults to the device it was compiled for. ``threads`` caps the runtime's intra-op threads
    (onnxruntime: per session; AOTInductor: while this runtime runs, then restored).
    ``providers`` names onnxruntime execution providers explicitly (instead of ``device``).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"exported model not found: {p}")
    with open(p, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):  # a zip archive: an AOTInductor package
        from yolactpp.runtime.aoti import AotiRuntime

        return AotiRuntime(p, device=device, threads=threads)
    from yolactpp.runtime.onnx import OnnxRuntime

    return OnnxRuntime(p, device=device, threads=threads, providers=providers)
