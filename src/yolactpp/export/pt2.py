"""torch.export + AOTInductor packages (``.pt2``): the compiled model in one file, fast to load.

The package calls the native ``yolactpp::deform_conv2d`` kernel (YOLACT++), so that op library
must be loaded before the package: :class:`yolactpp.runtime.aoti.AotiRuntime` does it. A C++ deployment links
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
from yolactpp.errors import YolactppWarning, warn_caller
from yolactpp.export._trace import export_info, trace_model
from yolactpp.export.metadata import ExportError, write_metadata
from yolactpp.outputs import check_output_file, staged_file
from yolactpp.runtime.aoti import check_device

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["SAFE_CPU_CODEGEN", "RecompiledWarning", "export_pt2"]


#: Inductor settings of the second compile when the first package fails its check run: 256-bit
#: (AVX2) vector code instead of AVX-512, the same as compiling with ``ATEN_CPU_CAPABILITY=avx2``.
#: AVX-512 packages were seen to corrupt the heap when run on AMD Zen 4 (pytorch/pytorch#176279).
SAFE_CPU_CODEGEN: dict[str, Any] = {"cpp.simdlen": 256}


class RecompiledWarning(YolactppWarning):
    """The first compiled package failed its check run; the package written was compiled again
    with :data:`SAFE_CPU_CODEGEN` and passed."""


def export_pt2(
    model: YolactPP,
    path: str | os.PathLike[str],
    *,
    dtype: str = "float32",
    max_detections: int | None = None,
    top_k: int | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Compile ``model`` ahead of time with AOTInductor into a ``.pt2`` package for ``device``.

    Same graph, inputs, outputs and metadata as :func:`yolactpp.export.export_onnx` (dynamic
    batch); the native DCN kernel is called as an op. Compiling takes minutes for the large models.

    The destination is checked first (a new ``.pt2`` name, or ``overwrite=True``). A CPU package
    is then loaded and run once in a child process on a fixed input and compared with the eager
    model (``verify``); if that process crashes or the results differ, the package is compiled
    again with AVX2 code (:data:`SAFE_CPU_CODEGEN`, with a :class:`RecompiledWarning`), and if that
    fails too, :class:`ExportError` says what happened and nothing is written.
    """
    target = check_output_file(path, suffix=".pt2", overwrite=overwrite, what="AOTInductor package")
    check_device(device)
    graph, program = trace_model(model, dtype, max_detections, top_k, use_topk=False)
    graph = graph.to(device)
    metadata = write_metadata(model.config, export_info(graph, "pt2", dtype, None))
    check = verify and torch.device(device).type == "cpu"
    if check:
        from yolactpp.export.verify import eager_outputs, probe_feeds

        feeds = probe_feeds(model.config, graph.max_top_k)
        expected = eager_outputs(graph, feeds)
    with staged_file(target) as staging:
        _compile(program, staging, metadata, model.config.name, {})
        if not check:
            return target
        problem = _check_run(staging, feeds, expected)
        if problem is None:
            return target
        _compile(program, staging, metadata, model.config.name, SAFE_CPU_CODEGEN)
        second = _check_run(staging, feeds, expected)
        if second is not None:
            raise ExportError(
                f"the compiled package of {model.config.name} does not run correctly on this machine: {problem}; "
                f"compiled again with AVX2 code: {second}. Nothing was written to {target}. Export to ONNX "
                "instead (format='onnx'), or try another torch version"
            )
        warn_caller(
            f"the first compiled package of {model.config.name} failed its check run ({problem}); {target} holds "
            "a package compiled again with AVX2 code, which passed",
            RecompiledWarning,
        )
    return target


def _compile(program: Any, path: Path, metadata: dict[str, str], name: str, configs: dict[str, Any]) -> None:
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"aot_inductor.metadata": metadata, **configs}
        )
    except Exception as exc:
        raise ExportError(f"AOTInductor could not compile {name}: {first_line(exc)}") from exc


def _check_run(path: Path, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str | None:
    """``None`` when the package runs in a child process and matches ``expected``, else what went wrong."""
    from yolactpp.export.verify import compare_outputs, run_in_child

    result = run_in_child(path, feeds)
    if result.outputs is None:
        return result.crash
    return compare_outputs(expected, result.outputs)
