"""Lazy loading of the compiled ``yolactpp._C`` library and backend selection.

Nothing is loaded at import: the first op call (or :func:`backend_info`) tries once, remembers
why it failed if it did, and logs one line saying which backend is in use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from dataclasses import dataclass
from typing import Iterator, Literal

import torch

from yolactpp.errors import InvalidArgumentError, YolactppError

__all__ = [
    "BackendInfo",
    "OpsUnavailableError",
    "backend_info",
    "get_backend",
    "native_available",
    "set_backend",
    "use_backend",
]

logger = logging.getLogger("yolactpp.ops")

Backend = Literal["auto", "native", "fallback"]
_VALID: tuple[str, ...] = ("auto", "native", "fallback")
ENV_BACKEND = "YOLACTPP_OPS"


class OpsUnavailableError(YolactppError, RuntimeError):
    """The native backend was requested (``set_backend("native")``, ``YOLACTPP_OPS=native``) but its
    kernels are not available for this device or build."""


_lock = threading.Lock()
_state: dict[str, object] = {"tried": False, "loaded": False, "reason": "not loaded yet", "logged": False}
_backend: list[str] = []


def _initial_backend() -> str:
    value = os.environ.get(ENV_BACKEND, "auto").strip().lower() or "auto"
    if value not in _VALID:
        raise InvalidArgumentError(f"{ENV_BACKEND}={value!r} is not one of {', '.join(_VALID)}")
    return value


def get_backend() -> str:
    """The current backend preference: ``auto``, ``native`` or ``fallback``."""
    if not _backend:
        _backend.append(_initial_backend())
    return _backend[0]


def set_backend(backend: Backend) -> None:
    """Choose the op backend for this process (also settable with ``YOLACTPP_OPS``)."""
    if backend not in _VALID:
        raise InvalidArgumentError(f"backend must be one of {', '.join(_VALID)}, got {backend!r}")
    if backend == "native" and not native_available():
        raise OpsUnavailableError(f"the native yolactpp ops are not available: {_state['reason']}")
    get_backend()
    _backend[0] = backend


@contextlib.contextmanager
def use_backend(backend: Backend) -> Iterator[None]:
    """Temporarily switch the op backend (restored on exit)."""
    previous = get_backend()
    set_backend(backend)
    try:
        yield
    finally:
        _backend[0] = previous


def _load_native() -> None:
    from importlib import util

    spec = util.find_spec("yolactpp._C")
    if spec is None or spec.origin is None:
        _state["reason"] = (
            "the package was installed without its compiled extension (no compiler, "
            "YOLACTPP_BUILD_OPS=0, or a failed build; reinstall to build it)"
        )
        return
    try:
        torch.ops.load_library(spec.origin)
    except (OSError, RuntimeError) as exc:
        _state["reason"] = f"the compiled extension {spec.origin} failed to load: {exc}"
        return
    _state["loaded"] = True
    _state["reason"] = f"compiled kernels loaded from {spec.origin}"
    from yolactpp.ops import _fake  # noqa: F401  (registers fake kernels once the ops exist)


def native_available() -> bool:
    """Whether the compiled ops are loaded (tries to load them once)."""
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                _load_native()
                _state["tried"] = True
    return bool(_state["loaded"])


def _has_kernel(op: str, device: str) -> bool:
    if not native_available():
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device)
    if key is None:
        return False
    return bool(torch._C._dispatch_has_kernel_for_dispatch_key(f"yolactpp::{op}", key))


def use_native(op: str, device: torch.device) -> bool:
    """Whether an op call on ``device`` should go to the native kernel under the current backend.

    Under torch.compile the answer is taken once at trace time (a constant of the graph).
    """
    return _decide(op, device.type)


@torch.compiler.assume_constant_result
def _decide(op: str, device: str) -> bool:
    backend = get_backend()
    if backend == "fallback":
        return False
    available = _has_kernel(op, device)
    if backend == "native" and not available:
        raise OpsUnavailableError(
            f"backend 'native' was requested but yolactpp::{op} has no {device} kernel: {_state['reason']}"
        )
    if not _state["logged"]:
        _state["logged"] = True
        logger.info("yolactpp ops: %s", "native kernels in use" if available else f"fallback in use ({_state['reason']})")
    return available


@dataclass(frozen=True)
class BackendInfo:
    """Which implementation an op uses on a device and why."""

    op: str
    device: str
    backend: Literal["native-cpu", "native-cuda", "fallback"]
    reason: str


_FALLBACKS = {"deform_conv2d": "torchvision.ops.deform_conv2d", "fast_nms": "pure PyTorch FastNMS"}
_NATIVE_NOTES = {
    "deform_conv2d": "forward only: calls that need gradients run torchvision",
    "fast_nms": "float32/float64: other dtypes run the pure PyTorch FastNMS",
}


def backend_info() -> list[BackendInfo]:
    """Per op and device (cpu, cuda): the backend that runs under the current preference, and why.

    Loads the compiled library if that was not tried yet; makes no CUDA call beyond asking
    whether a device is visible.
    """
    infos = []
    preference = get_backend()
    for op, fallback in _FALLBACKS.items():
        for device in ("cpu", "cuda"):
            if preference == "fallback":
                infos.append(BackendInfo(op, device, "fallback", f"{fallback} (backend set to 'fallback')"))
            elif _has_kernel(op, device):
                reason = f"{_state['reason']}; {_NATIVE_NOTES[op]}"
                if device == "cuda" and not torch.cuda.is_available():
                    reason += " (no CUDA device is visible now)"
                infos.append(BackendInfo(op, device, f"native-{device}", reason))  # type: ignore[arg-type]
            else:
                why = _state["reason"] if not native_available() else f"the extension was built without {device} kernels"
                infos.append(BackendInfo(op, device, "fallback", f"{fallback}: {why}"))
    return infos
