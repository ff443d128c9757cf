"""torch.export + AOTInductor packages (``.pt2``): the compiled model in one file, fast to load.

The package calls the native ``yolactpp::deform_conv2d`` kernel (YOLACT++), so that op library
must be loaded before the package: :class:`yolactpp.runtime.aoti.AotiRuntime` does it. A C++ deployment links
``libtorch`` and loads ``yolactpp/_C*.so`` (``dlopen``, or link it) before
``torch::inductor::AOTIModelPackageLoader`` opens the file (see docs/deploy.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from yolactpp._facts import first_line
from yolactpp.errors import InvalidArgumentError
from yolactpp.export._trace import export_info, prepare_graph, trace
from yolactpp.export.metadata import ExportError, write_metadata

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["export_pt2"]


def export_pt2(
    model: YolactPP,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    max_detections: int | None = None,
    top_k: int | None = None,
    device: str = "cpu",
) -> Path:
    """Compile ``model`` ahead of time with AOTInductor into a ``.pt2`` package for ``device``.

    Same graph, inputs, outputs and metadata as :func:`yolactpp.export.export_onnx` (dynamic
    batch); the native DCN kernel is called as an op. Compiling takes minutes for the large models.
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise InvalidArgumentError(f"AOTInductor packages must end in .pt2, got {path.name}")
    graph = prepare_graph(model, dtype, max_detections, top_k, use_topk=False).to(device)
    program = trace(graph)
    metadata = write_metadata(model.config, export_info(graph, "pt2", dtype, None))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"aot_inductor.metadata": metadata}
        )
    except Exception as exc:
        raise ExportError(f"AOTInductor could not compile {model.config.name}: {first_line(exc)}") from exc
    return path
