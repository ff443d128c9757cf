"""Lazy loading of the compiled op library, backend selection, and the fallback warning.

Nothing is loaded at import: the first op call (or :func:`backend_info`) tries once (the build
cache of ``yolactpp build-ops``, then the packaged ``yolactpp._C``, each only if it was built for
this torch), remembers why it failed if it did, and logs one line saying which backend is in use.
When a prediction then runs on a fallback although native kernels could exist, one
:class:`NativeOpsFallbackWarning` per process says why and names the fix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from yolactpp.errors import InvalidArgumentError, YolactppError, YolactppWarning, warn_caller
from yolactpp.ops import _build_config, _library, _selfcheck

__all__ = [
    "BackendInfo",
    "NativeOpsFallbackWarning",
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
#: Set to 0 to silence :class:`NativeOpsFallbackWarning`.
ENV_WARN = "YOLACTPP_OPS_WARN"
_FIX = "run `yolactpp build-ops` once (needs a C++ compiler) to build them for this torch"


class NativeOpsFallbackWarning(YolactppWarning):
    """An op runs on its slower fallback although native kernels could run here (once per process).

    Silence with ``YOLACTPP_OPS_WARN=0`` or ``ops.set_backend("fallback")``.
    """


class OpsUnavailableError(YolactppError, RuntimeError):
    """The native backend was requested (``set_backend("native")``, ``YOLACTPP_OPS=native``) but its
    kernels are not available for this device or build."""


_lock = threading.Lock()
_state: dict[str, object] = {
    "tried": False,
    "loaded": False,
    "reason": "not loaded yet",
    "logged": False,
    "warned": False,
    "path": None,
}
_backend: list[str] = []
_checks_warned: set[tuple[str, str]] = set()


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
    tried = []
    for candidate in _library.candidates():
        problem = _library.mismatch(candidate.path)
        if problem is None:
            try:
                torch.ops.load_library(str(candidate.path))
            except (OSError, RuntimeError) as exc:
                problem = f"it failed to load ({' '.join(str(exc).split())[:300]})"
        if problem is not None:
            tried.append(f"the {candidate.origin} library {candidate.path} is not used: {problem}")
            continue
        _state["loaded"] = True
        _state["path"] = candidate.path
        _state["reason"] = f"compiled kernels loaded from {candidate.path} ({candidate.origin})"
        _register_python_kernels()
        return
    if not tried:
        tried.append(
            "no compiled library was found: the package was installed without one (a build-isolated "
            "`pip install`, no compiler, or YOLACTPP_BUILD_OPS=0) and `yolactpp build-ops` has not been run"
        )
    _state["reason"] = "; ".join(tried)


def adopt(path: Path, origin: str) -> None:
    """Record a library that is already loaded (``yolactpp build-ops`` loads what it built) as the one in use.

    Loading a second library with the same ops would abort the process, so the loader must not
    go looking for another one.
    """
    with _lock:
        _state.update(tried=True, loaded=True, path=path, reason=f"compiled kernels loaded from {path} ({origin})")
    _register_python_kernels()


def _register_python_kernels() -> None:
    """Fake kernels and the DCN's autograd formula, registered once the ``yolactpp::`` schemas exist."""
    from yolactpp.ops import _autograd, _fake  # noqa: F401

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
    return _decide(op, str(device))


def _warn(message: str) -> None:
    """The fallback warning: once per process, unless ``YOLACTPP_OPS_WARN=0``."""
    if _state["warned"] or not _build_config.switch(ENV_WARN, True):
        return
    _state["warned"] = True
    warn_caller(f"{message}. Silence with {ENV_WARN}=0.", NativeOpsFallbackWarning)


def _why_fallback(op: str, device_type: str) -> str | None:
    """Why ``op`` runs its fallback on ``device_type`` although native kernels could exist, with the fix."""
    fallback = _FALLBACKS[op]
    if not native_available():
        return f"yolactpp::{op} runs on {fallback} (slower): {_state['reason']}; {_FIX}"
    if device_type == "cuda":
        return (
            f"yolactpp::{op} runs on {fallback} on CUDA (slower): the compiled library {_state['path']} has no "
            f"CUDA kernels; run `yolactpp build-ops` where nvcc is found (CUDA_HOME) to build them"
        )
    return None


@torch.compiler.assume_constant_result
def _decide(op: str, device: str) -> bool:
    backend = get_backend()
    if backend == "fallback":
        return False
    dev = torch.device(device)
    available = _has_kernel(op, dev.type)
    if backend == "native" and not available:
        raise OpsUnavailableError(
            f"backend 'native' was requested but yolactpp::{op} has no {dev.type} kernel: {_state['reason']}"
        )
    if available and dev.type in _selfcheck.DEVICE_TYPES:
        failure = _selfcheck.verify(op, dev)
        if failure is not None:
            if backend == "native":
                raise OpsUnavailableError(
                    f"backend 'native' was requested but yolactpp::{op} failed its self-check on {dev}: {failure}"
                )
            available = False
            if (op, device) in _checks_warned:
                return False
            _checks_warned.add((op, device))
            warn_caller(
                f"the native yolactpp::{op} kernel disagrees with its reference on {dev} ({failure}); that device "
                f"uses {_FALLBACKS[op]} for the rest of the process. Please report it with the output of "
                "`yolactpp build-ops --check`.",
                NativeOpsFallbackWarning,
            )
    elif not available and dev.type in ("cpu", "cuda"):
        why = _why_fallback(op, dev.type)
        if why is not None:
            _warn(why)
    if not _state["logged"]:
        _state["logged"] = True
        logger.info(
            "yolactpp ops: %s", "native kernels in use" if available else f"fallback in use ({_state['reason']})"
        )
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
    "deform_conv2d": "forward and backward (input, offset, mask, weight and bias gradients)",
    "fast_nms": "float32/float64: other dtypes run the pure PyTorch FastNMS",
}


def backend_info() -> list[BackendInfo]:
    """Per op and device (cpu, cuda): the backend that runs under the current preference, and why.

    Loads the compiled library if that was not tried yet; makes no CUDA call beyond asking
    whether a device is visible. A device whose kernel failed its self-check shows ``fallback``
    with the measured difference.
    """
    infos = []
    preference = get_backend()
    for op, fallback in _FALLBACKS.items():
        for device in ("cpu", "cuda"):
            failed = _selfcheck.failures(op, device)
            if preference == "fallback":
                infos.append(BackendInfo(op, device, "fallback", f"{fallback} (backend set to 'fallback')"))
            elif failed:
                what = "; ".join(f"{dev}: {why}" for dev, why in sorted(failed.items()))
                infos.append(
                    BackendInfo(op, device, "fallback", f"{fallback}: the native kernel failed its self-check ({what})")
                )
            elif _has_kernel(op, device):
                reason = f"{_state['reason']}; {_NATIVE_NOTES[op]}"
                if device == "cuda" and not torch.cuda.is_available():
                    reason += " (no CUDA device is visible now)"
                elif device in _selfcheck.DEVICE_TYPES:
                    reason += "; checked against the reference on first use"
                infos.append(BackendInfo(op, device, f"native-{device}", reason))  # type: ignore[arg-type]
            else:
                why = (
                    _state["reason"] if not native_available() else f"the extension was built without {device} kernels"
                )
                infos.append(BackendInfo(op, device, "fallback", f"{fallback}: {why}"))
    return infos
