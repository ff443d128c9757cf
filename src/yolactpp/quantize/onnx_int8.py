"""int8 static quantization of an exported ONNX model with onnxruntime (QDQ, per-channel weights).

The model is exported in the int8 form (:mod:`yolactpp.export.int8_form`), where every large
multiply is a ``Conv`` or ``MatMul``; what goes int8, found through the module scopes the exporter
writes into each node's metadata:

- every convolution of the network (backbone, FPN, ProtoNet, the head's shared layer, the mask
  re-scoring net) and the 1x1 weight product of each DCN, with uint8 outputs;
- the prediction head's output product (boxes, class logits, coefficients) and ProtoNet's final
  projection: int8 inputs and weights, **float32 output** (no output quantization, so neither the
  logits nor the prototypes are rounded to 8 bits).

What stays float32: the DCN's bilinear sampling (``GridSample``) and everything after the network
(box decoding, FastNMS, mask assembly).

Weights use the full 8-bit range on CPUs with integer dot-product instructions (VNNI, AMX, ARM
dot product); elsewhere onnxruntime multiplies uint8 by int8 with 16-bit intermediate sums, which
full 8-bit weights saturate (measured: 14 % of the float detections kept instead of 70 % on an
AVX2-only CPU), so there the 7-bit range is used (``weight_bits=7``).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from yolactpp.errors import InvalidArgumentError
from yolactpp.export.int8_form import HEAD_MATMUL_SCOPE
from yolactpp.export.metadata import QUANTIZATION_KEY, ExportFormatError, read_metadata, write_metadata
from yolactpp.runtime.int8 import Int8Support, int8_support

__all__ = [
    "FLOAT_OUTPUT_SCOPES",
    "QUANTIZATION_KEY",
    "QUANTIZED_PARTS",
    "WEIGHT_BITS",
    "default_weight_bits",
    "int8_nodes",
    "module_scopes",
    "quantize_onnx",
    "resolve_weight_bits",
]

#: Module paths (in the exported graph) whose Conv / MatMul nodes are quantized.
QUANTIZED_PARTS = (
    "network.backbone",
    "network.fpn",
    "network.proto_net",
    "network.prediction_layers",
    "network.maskiou_net",
)
#: Module name endings whose quantized product keeps a float32 output (the head's outputs).
FLOAT_OUTPUT_SCOPES = (f".{HEAD_MATMUL_SCOPE}",)
#: The weight ranges offered: 8 (full, needs integer dot products) or 7 (safe with 16-bit sums).
WEIGHT_BITS = (7, 8)
_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
#: The im2col ops around the head's output product, run on uint8 data when they carry QDQ pairs.
_DATA_MOVEMENT = ("Transpose", "Pad", "Slice", "Concat", "Reshape")


def module_scopes(node: Any) -> list[str]:
    """The module path of an exported node, outermost first (from the exporter's node metadata)."""
    for prop in node.metadata_props:
        if prop.key == _SCOPES_KEY:
            try:
                return [str(s) for s in ast.literal_eval(prop.value)]
            except (ValueError, SyntaxError):
                return []
    return []


def int8_nodes(model: Any) -> list[str]:
    """Names of the nodes to quantize in a model exported in the int8 form (see the module docs)."""
    chosen, seen_scopes, head_products = [], False, 0
    for node in model.graph.node:
        scopes = module_scopes(node)
        seen_scopes = seen_scopes or bool(scopes)
        if not any(s.startswith(QUANTIZED_PARTS) for s in scopes):
            continue
        in_head_outputs = any(s.endswith(FLOAT_OUTPUT_SCOPES) for s in scopes)
        if node.op_type in ("Conv", "MatMul"):  # MatMul: the int8 form's float-output products
            chosen.append(node.name)
            head_products += node.op_type == "MatMul" and in_head_outputs
        elif in_head_outputs and node.op_type in _DATA_MOVEMENT:
            chosen.append(node.name)
    if not seen_scopes:
        raise ExportFormatError(
            "the ONNX file has no module scopes in its node metadata, so the network's convolutions cannot be "
            "told apart; quantize a file written by this version of yolactpp"
        )
    if not head_products:
        raise ExportFormatError("the ONNX file is not in the int8 form (no head output product found); quantize a model, not a file")
    return chosen


def default_weight_bits(support: Int8Support | None = None) -> int:
    """8 where this CPU has integer dot-product instructions, else 7 (see the module docs)."""
    support = int8_support() if support is None else support
    return 8 if support.instructions else 7


def resolve_weight_bits(weight_bits: object) -> int:
    """``weight_bits`` checked (7, 8, or None for :func:`default_weight_bits`); else :class:`InvalidArgumentError`."""
    if weight_bits is None:
        return default_weight_bits()
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits not in WEIGHT_BITS:
        raise InvalidArgumentError(f"weight_bits must be 7, 8 or None (chosen for this CPU), got {weight_bits!r}")
    return weight_bits


class _DropAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_preprocessing_advice() -> Iterator[None]:
    """onnxruntime logs "Please consider to run pre-processing before quantization" (to the root
    logger) on every call; the exported graph is already shape-inferred and optimized, so it is noise."""
    advice, root = _DropAdvice(), logging.getLogger()
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def quantize_onnx(
    float_path: Path,
    int8_path: Path,
    feeds: Iterable[dict[str, np.ndarray]],
    *,
    calibration_count: int,
    weight_bits: int | None = None,
) -> Path:
    """Quantize the exported ``float_path`` into ``int8_path``, calibrating on ``feeds`` (graph
    inputs, one image each), with weights in ``weight_bits`` (default :func:`default_weight_bits`).
    ``float_path`` must be a float32 export in the int8 form. The result keeps the export metadata with ``dtype`` "int8" and adds
    the quantization settings under :data:`QUANTIZATION_KEY`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = onnx.load(str(float_path))
    metadata = {p.key: p.value for p in model.metadata_props}
    config, info = read_metadata(metadata, str(float_path))
    if info.dtype != "float32":
        raise ExportFormatError(f"{float_path}: only float32 exports can be quantized, this one is {info.dtype}")
    weight_bits = resolve_weight_bits(weight_bits)
    nodes = int8_nodes(model)
    del model

    class Reader(CalibrationDataReader):
        def __init__(self, stream: Iterator[dict[str, np.ndarray]]) -> None:
            self.stream = stream

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.stream, None)

    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_preprocessing_advice():
        quantize_static(
            str(float_path),
            str(int8_path),
            Reader(iter(feeds)),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MatMul", *_DATA_MOVEMENT],
            nodes_to_quantize=nodes,
            per_channel=True,
            reduce_range=weight_bits == 7,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
        )
    quantized = onnx.load(str(int8_path))
    del quantized.metadata_props[:]
    entries = write_metadata(config, dataclasses.replace(info, dtype="int8"))
    entries[QUANTIZATION_KEY] = json.dumps(
        {
            "engine": "onnxruntime static quantization, QDQ",
            "activations": "uint8, per tensor, min/max calibrated",
            "weights": "int8, per channel",
            "weight_bits": weight_bits,
            "calibration_images": calibration_count,
            "int8_nodes": len(nodes),
            "float_outputs": ["head outputs (box deltas, class logits, coefficients)", "prototypes"],
            "float_ops": ["DCN sampling (GridSample)", "detection", "mask assembly"],
        }
    )
    for key, value in entries.items():
        prop = quantized.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save_model(quantized, str(int8_path))
    return int8_path
