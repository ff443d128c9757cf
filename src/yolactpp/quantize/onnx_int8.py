"""int8 static quantization of an exported ONNX model with onnxruntime (QDQ, per-channel weights).

Which convolutions go int8: those of the network (backbone, FPN, ProtoNet, the prediction head's
shared layers), found through the module scopes the exporter writes into each node's metadata.
What stays float32, and why:

- the prediction head's output convolutions (class logits, box deltas, mask coefficients): their
  outputs feed detection directly, and 8 bits across 81 classes' logits reorder near-tied scores;
- the deformable convolutions of YOLACT++ (ONNX ``DeformConv`` has no integer form);
- everything after the network: box decoding, FastNMS, mask assembly and the re-scoring net.

Weights are quantized to 7 bits (``reduce_range``): CPUs without VNNI/AMX multiply uint8 by int8
with 16-bit intermediate sums, which saturate with full 8-bit weights (measured: 14 % of the float
detections kept instead of 70 % on an AVX2-only CPU); with 7 bits the file is exact everywhere.
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

from yolactpp.export.metadata import ExportFormatError, read_metadata, write_metadata

__all__ = ["FLOAT_LAYERS", "QUANTIZATION_KEY", "QUANTIZED_PARTS", "int8_conv_nodes", "quantize_onnx"]

#: Module paths (in the exported graph) whose convolutions are quantized.
QUANTIZED_PARTS = ("network.backbone", "network.fpn", "network.proto_net", "network.prediction_layers")
#: Module name endings whose convolutions stay float32 (the prediction head's outputs).
FLOAT_LAYERS = (".conf_layer", ".bbox_layer", ".mask_layer")
#: Metadata key of the quantization settings in an int8 file.
QUANTIZATION_KEY = "yolactpp.quantization"
_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def _module_scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == _SCOPES_KEY:
            try:
                return [str(s) for s in ast.literal_eval(prop.value)]
            except (ValueError, SyntaxError):
                return []
    return []


def int8_conv_nodes(model: Any) -> list[str]:
    """Names of the ``Conv`` nodes to quantize in an exported model (see the module docs)."""
    chosen, seen_scopes = [], False
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        scopes = _module_scopes(node)
        seen_scopes = seen_scopes or bool(scopes)
        in_network = any(s.startswith(QUANTIZED_PARTS) for s in scopes)
        if in_network and not any(s.endswith(FLOAT_LAYERS) for s in scopes):
            chosen.append(node.name)
    if not seen_scopes:
        raise ExportFormatError(
            "the ONNX file has no module scopes in its node metadata, so the network's convolutions cannot be "
            "told apart; quantize a file written by this version of yolactpp's export_onnx"
        )
    return chosen


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
) -> Path:
    """Quantize the exported ``float_path`` into ``int8_path``, calibrating on ``feeds`` (graph
    inputs, one image each). The result keeps the export metadata with ``dtype`` "int8" and adds
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
    nodes = int8_conv_nodes(model)
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
            op_types_to_quantize=["Conv"],
            nodes_to_quantize=nodes,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    quantized = onnx.load(str(int8_path))
    del quantized.metadata_props[:]
    entries = write_metadata(config, dataclasses.replace(info, dtype="int8"))
    entries[QUANTIZATION_KEY] = json.dumps(
        {
            "engine": "onnxruntime static quantization, QDQ",
            "activations": "uint8, per tensor, min/max calibrated",
            "weights": "int8 (7-bit range), per channel",
            "calibration_images": calibration_count,
            "int8_convolutions": len(nodes),
            "float_layers": [*FLOAT_LAYERS, "DeformConv", "detection", "mask assembly", "maskiou_net"],
        }
    )
    for key, value in entries.items():
        prop = quantized.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save_model(quantized, str(int8_path))
    return int8_path
