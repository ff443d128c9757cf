"""torch.export + AOTInductor packages (``.pt2``): the compiled model in one file, fast to load.

The package calls the native ``yolactpp::deform_conv2d`` kernel (YOLACT++), so that op library
must be loaded before the package: :func:`pt2_runner` does it. A C++ deployment links
``libtorch`` and loads ``yolactpp/_C*.so`` (``dlopen``, or link it) before
``torch::inductor::AOTIModelPackageLoader`` opens the file (see docs/deploy.md).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from yolactpp.errors import InvalidArgumentError, YolactppWarning
from yolactpp.export._trace import export_info, trace_model
from yolactpp.export.metadata import ExportError, ExportFormatError, write_metadata
from yolactpp.outputs import check_output_file, staged_file

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["SAFE_CPU_CODEGEN", "RecompiledWarning", "export_pt2", "pt2_runner"]


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
    _check_device(device)
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
        warnings.warn(
            f"the first compiled package of {model.config.name} failed its check run ({problem}); {target} holds "
            "a package compiled again with AVX2 code, which passed",
            RecompiledWarning,
            stacklevel=2,
        )
    return target


def _check_device(device: str) -> None:
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"device must be 'cpu' or a CUDA device such as 'cuda', got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"cannot compile for device {device!r}: CUDA is not available here")
    if kind not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"AOTInductor packages are compiled for cpu or cuda, got device {device!r}")


def _compile(program: Any, path: Path, metadata: dict[str, str], name: str, configs: dict[str, Any]) -> None:
    try:
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"aot_inductor.metadata": metadata, **configs}
        )
    except Exception as exc:
        text = str(exc).strip()
        raise ExportError(
            f"AOTInductor could not compile {name}: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from exc


def _check_run(path: Path, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str | None:
    """``None`` when the package runs in a child process and matches ``expected``, else what went wrong."""
    from yolactpp.export.verify import compare_outputs, run_in_child

    result = run_in_child(path, feeds)
    if result.outputs is None:
        return result.crash
    return compare_outputs(expected, result.outputs)


def pt2_runner(path: Path, threads: int | None = None, device: str | None = None) -> tuple[Any, dict[str, str]]:
    """(runner, metadata) of a package; loads the native op library first."""
    from yolactpp.export.graph import INPUT_NAMES
    from yolactpp.ops._loader import native_available

    native_available()  # registers yolactpp::deform_conv2d, which the package calls
    if device is not None:
        _check_device(device)
    if threads is not None:
        torch.set_num_threads(threads)
    index = -1 if device is None or device == "cpu" else torch.device(device).index or 0
    try:
        compiled = torch._inductor.aoti_load_package(str(path), device_index=index)
        metadata = dict(compiled.get_metadata())
    except Exception as exc:
        text = str(exc).strip()
        raise ExportFormatError(
            f"{path} is not a loadable AOTInductor package: {text.splitlines()[0] if text else type(exc).__name__}"
        ) from None
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
