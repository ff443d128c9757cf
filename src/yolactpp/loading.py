"""``yolactpp.load``: the right predictor for whatever names a model.

One entry point for the CLI, the benchmark and the Ray integration, so that every way of running
a model accepts every kind of model:

- ``.onnx`` (float32, float16 or int8) and ``.pt2`` files -> :class:`yolactpp.export.ExportedModel`
  (:func:`yolactpp.export.load_exported`: onnxruntime or AOTInductor; an ``.onnx`` file needs no
  torch);
- anything else (an original ``.pth``, a :meth:`~yolactpp.YolactPP.save_pretrained` folder, a zoo
  name, an ``"owner/name"`` hub repo) -> :class:`yolactpp.YolactPP` (eager torch,
  :meth:`~yolactpp.YolactPP.from_pretrained`).

Both are :class:`~yolactpp.predictor.Predictor` objects with the same ``predict`` / ``iter_predict``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp._facts import EXPORTED_SUFFIXES, MODEL_DTYPES
from yolactpp.errors import InvalidArgumentError

if TYPE_CHECKING:
    import torch

    from yolactpp.config import ModelConfig
    from yolactpp.export.predictor import ExportedModel
    from yolactpp.model import YolactPP

__all__ = ["is_exported_file", "load"]


def is_exported_file(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether ``name_or_path`` names an exported file (``.onnx`` / ``.pt2``), which loads without a config."""
    return Path(name_or_path).suffix.lower() in EXPORTED_SUFFIXES


def load(
    name_or_path: str | os.PathLike[str],
    *,
    config: ModelConfig | str | None = None,
    class_names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | str | None = None,
    threads: int | None = None,
    revision: str | None = None,
    force_download: bool = False,
) -> YolactPP | ExportedModel:
    """The model named by ``name_or_path``, ready to ``predict``: see the module notes for what
    each kind of name gives.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``) is where it runs (default:
    the CPU; a ``.pt2`` package: the device it was compiled for). ``dtype`` (``"float32"``,
    ``"float64"``, ``"bfloat16"``, ``"float16"`` or a ``torch.dtype``), ``config``,
    ``class_names``, ``revision`` and ``force_download`` apply to checkpoints, folders and names
    (:meth:`YolactPP.from_pretrained`); an exported file carries its config and precision, so
    they are refused for one. ``threads`` caps an exported file's runtime threads (for that model
    only); an eager model uses torch's process-wide setting (``torch.set_num_threads``).
    """
    if is_exported_file(name_or_path):
        return _load_exported(name_or_path, config, class_names, device, dtype, threads, revision, force_download)
    if threads is not None:
        raise InvalidArgumentError(
            "threads= applies to exported files (.onnx, .pt2); an eager model uses torch.set_num_threads"
        )
    from yolactpp.model import YolactPP

    return YolactPP.from_pretrained(
        name_or_path,
        config,
        device=device,
        dtype=_torch_dtype(dtype),
        revision=revision,
        force_download=force_download,
        class_names=class_names,
    )


def _load_exported(
    path: str | os.PathLike[str],
    config: object,
    class_names: object,
    device: object,
    dtype: object,
    threads: int | None,
    revision: object,
    force_download: bool,
) -> ExportedModel:
    from yolactpp.export.predictor import load_exported

    refused = {"config": config, "class_names": class_names, "revision": revision}
    for name, value in refused.items():
        if value is not None:
            raise InvalidArgumentError(f"{name}= does not apply to an exported model (the file carries its config)")
    if force_download:
        raise InvalidArgumentError("force_download= does not apply to an exported model (a local file)")
    if dtype is not None and str(dtype).removeprefix("torch.") != "float32":
        raise InvalidArgumentError(
            f"dtype={dtype} does not apply to an exported model (its precision was chosen at export)"
        )
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InvalidArgumentError(f"threads must be an integer >= 1, got {threads!r}")
    return load_exported(path, device=None if device is None else str(device), threads=threads)


def _torch_dtype(dtype: Any) -> Any:
    if dtype is None or not isinstance(dtype, str):
        return dtype
    if dtype not in MODEL_DTYPES:
        raise InvalidArgumentError(f"dtype must be one of {', '.join(MODEL_DTYPES)} (or a torch.dtype), got {dtype!r}")
    import torch

    return getattr(torch, dtype)
