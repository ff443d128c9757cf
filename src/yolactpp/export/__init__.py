"""Export to ONNX / torch.export AOTInductor packages, and prediction with exported files.

>>> from yolactpp.export import export_onnx, load_exported      # doctest: +SKIP
>>> export_onnx(model, "model.onnx")                              # doctest: +SKIP
>>> load_exported("model.onnx").predict("image.jpg")              # doctest: +SKIP

:func:`load_exported` and :class:`ExportedModel` need no torch for ``.onnx`` files; the
exporters import torch (and onnx / onnxscript) when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "export_onnx": "yolactpp.export.onnx_export",
    "export_pt2": "yolactpp.export.pt2",
    "load_exported": "yolactpp.export.predictor",
    "ExportedModel": "yolactpp.export.predictor",
    "ExportError": "yolactpp.export.metadata",
    "ExportFormatError": "yolactpp.export.metadata",
    "ExportInfo": "yolactpp.export.metadata",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from yolactpp.export.metadata import ExportError, ExportFormatError, ExportInfo
    from yolactpp.export.onnx_export import export_onnx
    from yolactpp.export.predictor import ExportedModel, load_exported
    from yolactpp.export.pt2 import export_pt2


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'yolactpp.export' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
