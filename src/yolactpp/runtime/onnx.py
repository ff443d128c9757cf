"""``.onnx`` files on onnxruntime: one session per file, its threads and providers its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from yolactpp._facts import first_line
from yolactpp.errors import InvalidArgumentError, MissingDependencyError, YolactppError

__all__ = ["OnnxRuntime", "providers_for"]


def providers_for(device: str | None) -> list[Any]:
    """onnxruntime execution providers for a device name: ``cpu`` (default), ``cuda``, ``cuda:N``."""
    if device is None or device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InvalidArgumentError(f"ONNX models run on cpu, cuda or cuda:N, got device {device!r}")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class OnnxRuntime:
    """An onnxruntime ``InferenceSession`` of one file (no torch needed)."""

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        *,
        device: str | None = None,
        threads: int | None = None,
        providers: Sequence[Any] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError(
                "predicting with .onnx files needs onnxruntime: pip install 'yolactpp[onnx]'"
            ) from None
        from yolactpp.export.metadata import ExportFormatError

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.log_severity_level = 3
        chosen = list(providers) if providers is not None else providers_for(device)
        names = [p[0] if isinstance(p, tuple) else p for p in chosen]
        available = ort.get_available_providers()
        unknown = [name for name in names if name not in available]
        if unknown:
            raise InvalidArgumentError(
                f"onnxruntime execution provider(s) {unknown} are not available here (available: {available}); "
                "CUDAExecutionProvider needs pip install onnxruntime-gpu and a GPU"
            )
        try:
            self._session = ort.InferenceSession(str(path), options, providers=chosen)
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
            if isinstance(exc, YolactppError):
                raise
            raise ExportFormatError(f"{path} is not a loadable ONNX model: {first_line(exc)}") from None
        started = self._session.get_providers()[0]
        if names[0] != "CPUExecutionProvider" and started != names[0]:
            raise InvalidArgumentError(
                f"onnxruntime could not start {names[0]} for {path} (it would run on {started}); "
                "check the GPU and its CUDA/cuDNN libraries, or pass providers=['CPUExecutionProvider']"
            )
        self.image_shape: tuple[object, ...] | None = tuple(self._session.get_inputs()[0].shape)
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        self.input_names: tuple[str, ...] | None = tuple(i.name for i in self._session.get_inputs())
        self.output_names: tuple[str, ...] | None = tuple(o.name for o in self._session.get_outputs())
        self.device = "cuda" if self._session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """One session run."""
        names = list(outputs)
        return dict(zip(names, self._session.run(names, feeds)))
