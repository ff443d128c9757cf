"""ONNX export: the whole model in standard ONNX ops (DCNv2 as ``DeformConv``), metadata included."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from yolactpp._facts import first_line
from yolactpp.errors import InvalidArgumentError, require_extra
from yolactpp.export._trace import export_info, prepare_graph, trace
from yolactpp.export.graph import INPUT_NAMES, output_names
from yolactpp.export.metadata import ExportError, write_metadata

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["MIN_OPSET", "export_onnx"]

#: ``DeformConv`` entered the standard ONNX opset in version 19.
MIN_OPSET = 19
DEFAULT_OPSET = 22


def _deform_conv_translation(opset: int) -> Any:
    """onnxscript translation of ``yolactpp::deform_conv2d`` into the standard ``DeformConv``."""
    import onnxscript

    op = getattr(onnxscript, f"opset{opset}")

    def deform_conv2d(input, offset, weight, bias, stride, padding, dilation, mask):  # type: ignore[no-untyped-def]
        taps = weight.shape[2] * weight.shape[3]
        return op.DeformConv(
            input,
            weight,
            offset,
            bias,
            mask,
            dilations=list(dilation),
            strides=list(stride),
            pads=[padding[0], padding[1], padding[0], padding[1]],
            group=1,
            offset_group=offset.shape[1] // (2 * taps),
        )

    return deform_conv2d


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
    """
    require_extra(("onnx", "onnxscript"), "onnx", "exporting to ONNX")
    import onnx

    if opset < MIN_OPSET:
        raise InvalidArgumentError(f"opset must be >= {MIN_OPSET} (the first with DeformConv), got {opset}")
    if deform_conv not in ("DeformConv", "grid_sample"):
        raise InvalidArgumentError(f"deform_conv must be 'DeformConv' or 'grid_sample', got {deform_conv!r}")
    path = Path(path)
    graph = prepare_graph(
        model, dtype, max_detections, top_k, use_topk=True, grid_sample_dcn=deform_conv == "grid_sample"
    )
    program = trace(graph)
    onnx_program = to_onnx(program, path, opset, list(INPUT_NAMES), list(output_names(model.config)))
    proto = onnx_program.model_proto
    for key, value in write_metadata(model.config, export_info(graph, "onnx", dtype, opset)).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        onnx.save_model(proto, str(path))
    except ValueError:  # over the 2 GB protobuf limit
        raise ExportError(f"{model.config.name} is too large for a single ONNX file") from None
    return path
