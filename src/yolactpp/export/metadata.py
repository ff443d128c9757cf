"""What an exported file carries besides the graph, and the errors for files that are not ours.

Every export stores string key/value metadata (ONNX ``metadata_props``; the AOTInductor
package's metadata for ``.pt2``): the full model config (name, class names, input size,
preprocessing, detection defaults), the export settings and the yolactpp version, so the file
alone is enough to predict. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yolactpp.config import ModelConfig
from yolactpp.errors import YolactppError

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VALUE",
    "QUANTIZATION_KEY",
    "ExportError",
    "ExportFormatError",
    "ExportInfo",
    "quantized_weight_bits",
    "read_metadata",
    "write_metadata",
]

FORMAT_KEY = "yolactpp.format"
#: Bumped when the graph's inputs/outputs change meaning.
FORMAT_VALUE = "yolactpp-export/1"
_CONFIG_KEY = "yolactpp.config"
_EXPORT_KEY = "yolactpp.export"
_VERSION_KEY = "yolactpp.version"
#: The quantization settings of an int8 file (JSON: weight bits, calibration, what is int8).
QUANTIZATION_KEY = "yolactpp.quantization"


class ExportError(YolactppError, RuntimeError):
    """A model that cannot be exported as asked (e.g. an op the format cannot express)."""


class ExportFormatError(YolactppError, ValueError):
    """A file that is not a readable yolactpp export (foreign, damaged or tampered with)."""


@dataclass(frozen=True)
class ExportInfo:
    """The export settings stored in a file.

    ``format`` ("onnx" / "pt2"), ``dtype`` of the weights ("float32" / "float16"),
    ``max_detections`` and ``top_k`` (the largest values ``predict`` accepts), ``inputs`` and
    ``outputs`` (graph names in order), ``opset`` (ONNX only), ``yolactpp_version`` (the exporter).
    """

    format: str
    dtype: str
    max_detections: int
    top_k: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    opset: int | None
    yolactpp_version: str


def write_metadata(config: ModelConfig, info: ExportInfo) -> dict[str, str]:
    """The string metadata of an export."""
    settings = {
        "format": info.format,
        "dtype": info.dtype,
        "max_detections": info.max_detections,
        "top_k": info.top_k,
        "inputs": list(info.inputs),
        "outputs": list(info.outputs),
        "opset": info.opset,
    }
    return {
        FORMAT_KEY: FORMAT_VALUE,
        _VERSION_KEY: info.yolactpp_version,
        _CONFIG_KEY: json.dumps(config.to_dict()),
        _EXPORT_KEY: json.dumps(settings),
    }


def read_metadata(metadata: Mapping[str, str], source: str) -> tuple[ModelConfig, ExportInfo]:
    """Config and export settings from a file's metadata; :class:`ExportFormatError` if absent or invalid."""
    marker = metadata.get(FORMAT_KEY)
    if marker is None:
        raise ExportFormatError(
            f"{source} is not a yolactpp export (no '{FORMAT_KEY}' metadata); export one with "
            "`yolactpp export -m WEIGHTS --format onnx|pt2 -o FILE`"
        )
    if marker != FORMAT_VALUE:
        raise ExportFormatError(
            f"{source} is a yolactpp export of format {marker!r}; this yolactpp reads {FORMAT_VALUE!r}"
        )
    try:
        config = ModelConfig.from_dict(json.loads(metadata[_CONFIG_KEY]))
        settings: dict[str, Any] = json.loads(metadata[_EXPORT_KEY])
        info = ExportInfo(
            format=str(settings["format"]),
            dtype=str(settings["dtype"]),
            max_detections=int(settings["max_detections"]),
            top_k=int(settings["top_k"]),
            inputs=tuple(settings["inputs"]),
            outputs=tuple(settings["outputs"]),
            opset=None if settings.get("opset") is None else int(settings["opset"]),
            yolactpp_version=str(metadata.get(_VERSION_KEY, "unknown")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportFormatError(f"{source}: damaged yolactpp metadata ({type(exc).__name__}: {exc})") from None
    return config, info


def quantized_weight_bits(metadata: dict[str, str]) -> int | None:
    """The weight range an int8 file was quantized with (7 or 8), None when it does not say."""
    try:
        bits = json.loads(metadata.get(QUANTIZATION_KEY, "{}")).get("weight_bits")
    except (ValueError, AttributeError):
        return None
    return bits if bits in (7, 8) else None
