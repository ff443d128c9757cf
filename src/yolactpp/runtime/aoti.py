"""``.pt2`` AOTInductor packages on torch, with the thread count scoped to this runtime.

The package calls the native ``yolactpp::deform_conv2d`` kernel (YOLACT++), so the op library is
loaded before the package is opened. torch's thread count is process-wide: a runtime opened with
``threads=N`` sets it for the duration of each of its runs and restores it afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from yolactpp._facts import first_line
from yolactpp.concurrency import torch_threads
from yolactpp.errors import InvalidArgumentError

__all__ = ["AotiRuntime", "check_device"]


def check_device(device: str) -> None:
    """Refuse a device AOTInductor packages cannot be compiled for or run on here."""
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError):
        raise InvalidArgumentError(f"device must be 'cpu' or a CUDA device such as 'cuda', got {device!r}") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"cannot compile for device {device!r}: CUDA is not available here")
    if kind not in ("cpu", "cuda"):
        raise InvalidArgumentError(f"AOTInductor packages are compiled for cpu or cuda, got device {device!r}")

class AotiRuntime:
    """A compiled AOTInductor package loaded on its device."""

    name = "aoti"

    def __init__(self, path: Path, *, device: str | None = None, threads: int | None = None) -> None:
        from yolactpp.export.metadata import ExportFormatError
        from yolactpp.ops._loader import native_available

        if device is not None:
            check_device(device)
        native_available()  # registers yolactpp::deform_conv2d, which the package calls
        self._threads = threads
        index = -1 if device is None or device == "cpu" else torch.device(device).index or 0
        try:
            with torch_threads(threads):
                self._compiled = torch._inductor.aoti_load_package(str(path), device_index=index)
            self.metadata: dict[str, str] = dict(self._compiled.get_metadata())
        except Exception as exc:
            raise ExportFormatError(f"{path} is not a loadable AOTInductor package: {first_line(exc)}") from None
        self._target = torch.device(device) if device is not None else torch.device("cpu")
        self.device = str(self._target)
        self.input_names: tuple[str, ...] | None = None  # a package does not name its arguments
        self.output_names: tuple[str, ...] | None = None
        self.image_shape: tuple[object, ...] | None = None

    def run(self, feeds: dict[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
        """One call of the compiled program (positional inputs, in the graph's order)."""
        args = [torch.from_numpy(np.asarray(value)).to(self._target) for value in feeds.values()]
        with torch_threads(self._threads), torch.inference_mode():
            results = self._compiled(*args)
        return {name: out.cpu().numpy() for name, out in zip(outputs, results, strict=True)}
