"""torch.export + AOTInductor packages (``.pt2``): the compiled model in one file, fast to load.

The package calls the native ``yolactpp::deform_conv2d`` kernel (YOLACT++), so that op library
must be loaded before the package: :func:`pt2_runner` does it. A C++ deployment links
``libtorch`` and loads ``yolactpp/_C*.so`` (``dlopen``, or link it) before
``torch::inductor::AOTIModelPackageLoader`` opens the file (see docs/deploy.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from yolactpp._facts import first_line
from yolactpp.errors import InvalidArgumentError
from yolactpp.export._trace import export_info, prepare_graph, trace
from yolactpp.export.metadata import ExportError, ExportFormatError, write_metadata

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["export_pt2", "pt2_runner"]


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


def pt2_runner(path: Path, threads: int | None = None, device: str | None = None) -> tuple[Any, dict[str, str]]:
    """(runner, metadata) of a package; loads the native op library first."""
    from yolactpp.export.graph import INPUT_NAMES
    from yolactpp.ops._loader import native_available

    native_available()  # registers yolactpp::deform_conv2d, which the package calls
    if threads is not None:
        torch.set_num_threads(threads)
    index = -1 if device is None or device == "cpu" else torch.device(device).index or 0
    try:
        compiled = torch._inductor.aoti_load_package(str(path), device_index=index)
        metadata = dict(compiled.get_metadata())
    except Exception as exc:
        raise ExportFormatError(f"{path} is not a loadable AOTInductor package: {first_line(exc)}") from None
    names: list[str] = []
    target = torch.device(device) if device is not None else torch.device("cpu")

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        args = [torch.from_numpy(np.asarray(feeds[name])).to(target) for name in INPUT_NAMES]
        with torch.inference_mode():
            outputs = compiled(*args)
        return {name: out.cpu().numpy() for name, out in zip(names, outputs)}

    from yolactpp.export.metadata import read_metadata

    _, info = read_metadata(metadata, str(path))
    names.extend(info.outputs)
    run.device = str(target)  # type: ignore[attr-defined]
    return run, metadata
