"""ONNX export: the whole model in standard ONNX ops (DCNv2 as ``DeformConv``), metadata included."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from yolactpp._facts import first_line
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError, require_extra
from yolactpp.export._trace import export_info, trace_model
from yolactpp.export.graph import INPUT_NAMES, output_names
from yolactpp.export.metadata import ExportError, write_metadata
from yolactpp.outputs import check_output_file, staged_file

if TYPE_CHECKING:
    from yolactpp.config import ModelConfig
    from yolactpp.export.graph import DeploymentGraph
    from yolactpp.model import YolactPP

__all__ = ["MAX_OPSET", "MIN_OPSET", "check_exported", "export_onnx", "write_onnx"]

#: ``DeformConv`` entered the standard ONNX opset in version 19.
MIN_OPSET = 19
DEFAULT_OPSET = 22
#: The newest opset the exporter (onnxscript) and onnxruntime are known to handle.
MAX_OPSET = 23


def _deform_conv_translation(opset: int) -> Any:
    """onnxscript translation of ``yolactpp::deform_conv2d`` into the standard ``DeformConv``."""
    import onnxscript

    op = getattr(onnxscript, f"opset{opset}")

    def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask):  # type: ignore[no-untyped-def]
        taps = weight.shape[2] * weight.shape[3]
        groups = _whole_ratio("input channels", input.shape[1], "weight input channels", weight.shape[1])
        offset_groups = _whole_ratio("offset channels", offset.shape[1], "2 x kernel taps", 2 * taps)
        if mask is not None and mask.shape[1] != offset_groups * taps:
            raise ExportError(
                f"deform_conv2d: mask has {mask.shape[1]} channels, expected {offset_groups * taps} "
                f"({offset_groups} offset group(s) x {taps} taps)"
            )
        return op.DeformConv(
            input,
            weight,
            offset,
            bias,
            mask,
            dilations=list(dilation),
            strides=list(stride),
            pads=[padding[0], padding[1], padding[0], padding[1]],
            group=groups,
            kernel_shape=[weight.shape[2], weight.shape[3]],
            offset_group=offset_groups,
        )

    return deform_conv2d


def _whole_ratio(what: str, value: Any, per: str, unit: Any) -> int:
    """``value / unit`` as a group count; :class:`ExportError` when the shapes do not divide (or are not fixed)."""
    if not isinstance(value, int) or not isinstance(unit, int):
        raise ExportError(f"deform_conv2d: {what} ({value}) and {per} ({unit}) must be fixed numbers to export")
    if unit <= 0 or value % unit:
        raise ExportError(f"deform_conv2d: {what} ({value}) is not a multiple of {per} ({unit})")
    return value // unit


def translation_table(opset: int) -> dict[Any, Any]:
    """Custom translations for yolactpp's own ops (the native DCN; FastNMS is not in exported graphs)."""
    from yolactpp.ops._loader import native_available

    if not native_available():  # the op does not exist: the network runs torchvision's, which torch translates
        return {}
    return {torch.ops.yolactpp.deform_conv2d.default: _deform_conv_translation(opset)}


_UNSUPPORTED = re.compile(
    r"(?:No ONNX function found for|Unsupported FX nodes:?)\s*[<{\[]?\s*(?:OpOverload\(op=')?([\w.:]+)"
)


def to_onnx(program: Any, path: Path, opset: int, input_names: list[str], output_names_: list[str]) -> Any:
    """torch.onnx export of an ExportedProgram (or module); unsupported ops become :class:`ExportError` naming them."""
    try:
        return torch.onnx.export(
            program,
            dynamo=True,
            opset_version=opset,
            input_names=input_names,
            output_names=output_names_,
            custom_translation_table=translation_table(opset),
            optimize=True,
            verbose=False,
            f=None,
        )
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None:  # a translation's own ExportError, wrapped by torch.onnx
            if isinstance(cause, ExportError):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        text = str(exc)
        found = _UNSUPPORTED.search(text) or re.search(r"\b(torch\.ops\.[\w.]+|[a-z_]\w*::\w+)", text)
        if found:
            raise ExportError(
                f"cannot express the op {found.group(1)} in ONNX (opset {opset}): no translation exists"
            ) from exc
        raise ExportError(f"ONNX export failed: {first_line(exc)}") from exc


def export_onnx(
    model: YolactPP,
    path: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
    max_detections: int | None = None,
    top_k: int | None = None,
    deform_conv: str = "DeformConv",
    overwrite: bool = False,
    verify: bool = True,
) -> Path:
    """Write ``model`` as one ONNX file: normalized images ``[B, 3, S, S]`` in, padded detections out.

    The graph uses standard ops only (the DCNv2 of YOLACT++ becomes ``DeformConv``, opset >= 19),
    covers the network, box decoding, FastNMS, mask assembly at prototype resolution and the
    YOLACT++ re-scoring net, has a dynamic batch dimension and carries the model config as
    metadata (:func:`yolactpp.export.load_exported` needs nothing else). ``dtype="float16"``
    stores half-precision weights for GPU runtimes (inputs stay float32; detection runs in
    float32). ``max_detections`` / ``top_k`` default to the config's and bound what ``predict`` accepts.
    ``deform_conv="grid_sample"`` writes the DCN as ``GridSample`` + ``MatMul`` instead of
    ``DeformConv``, for runtimes without that op (OpenVINO); same results, slower.

    ``path`` must end in ``.onnx`` and not exist (unless ``overwrite=True``); it is checked before
    the export starts. The file is written beside it first, loaded and run once on onnxruntime in
    a child process and compared with the eager model (``verify``, float32 only; float16 files
    are only run), and takes its name only once it passed.
    """
    require_extra(("onnx", "onnxscript"), "onnx", "exporting to ONNX")
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise InvalidArgumentTypeError(f"opset must be an int, got {opset!r}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidArgumentError(
            f"opset must be from {MIN_OPSET} (the first with DeformConv) to {MAX_OPSET}, got {opset}"
        )
    if deform_conv not in ("DeformConv", "grid_sample"):
        raise InvalidArgumentError(f"deform_conv must be 'DeformConv' or 'grid_sample', got {deform_conv!r}")
    target = check_output_file(path, suffix=".onnx", overwrite=overwrite, what="ONNX file")
    form = "grid_sample" if deform_conv == "grid_sample" else "standard"
    return write_onnx(model, target, opset=opset, dtype=dtype, max_detections=max_detections, top_k=top_k, form=form, verify=verify)


def write_onnx(
    model: YolactPP,
    target: Path,
    *,
    opset: int = DEFAULT_OPSET,
    dtype: str = "float32",
    max_detections: int | None = None,
    top_k: int | None = None,
    form: str = "standard",
    verify: bool = True,
) -> Path:
    """:func:`export_onnx` once its arguments are checked; ``form`` as in :func:`yolactpp.export._trace.prepare_graph`
    (``"int8"`` is the form ``model.quantize`` calibrates and quantizes)."""
    import onnx

    graph, program = trace_model(model, dtype, max_detections, top_k, use_topk=True, form=form)
    onnx_program = to_onnx(program, target, opset, list(INPUT_NAMES), list(output_names(model.config)))
    proto = onnx_program.model_proto
    for key, value in write_metadata(model.config, export_info(graph, "onnx", dtype, opset)).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    with staged_file(target) as staging:
        try:
            onnx.save_model(proto, str(staging))
        except ValueError:  # over the 2 GB protobuf limit
            raise ExportError(f"{model.config.name} is too large for a single ONNX file") from None
        if verify:
            check_exported(staging, model.config, graph.max_top_k, graph if dtype == "float32" else None)
    return target


def check_exported(path: Path, config: ModelConfig, top_k: int, graph: DeploymentGraph | None) -> None:
    """Run the exported ``path`` once in a child process on the probe input (and compare it with the
    eager ``graph``, when given); :class:`ExportError` saying what happened when it crashes or differs."""
    from yolactpp.export.verify import compare_outputs, eager_outputs, probe_feeds, run_in_child

    feeds = probe_feeds(config, top_k)
    result = run_in_child(path, feeds)
    problem = result.crash
    if problem is None and graph is not None and result.outputs is not None:
        problem = compare_outputs(eager_outputs(graph, feeds), result.outputs)
    if problem is not None:
        raise ExportError(
            f"the exported {config.name} does not run correctly on onnxruntime: {problem}; the file was not "
            "written. Check the onnxruntime version (pip install -U onnxruntime) or report this with the model config"
        )
