"""Once per process and device: does a native kernel agree with the reference on a small fixed case?

The CUDA kernels are compiled without ever running in CI, so the first time a native op would
run on a CUDA device, it runs once on a small case next to the reference (torchvision's DCN with
its five gradients, the pure-PyTorch FastNMS). A mismatch or an error sends that device to the fallback for the rest of
the process; the caller warns and ``backend_info()`` shows the measured difference.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

__all__ = ["CHECKED_OPS", "DEVICE_TYPES", "KERNELS", "failures", "verify"]

#: Device types whose native kernels are checked before first use (tests add "cpu").
DEVICE_TYPES: tuple[str, ...] = ("cuda",)

#: The native kernels under test, looked up at call time (tests swap in a faulty one).
KERNELS: dict[str, Callable[..., object]] = {
    "deform_conv2d": lambda *args: torch.ops.yolactpp.deform_conv2d(*args),
    "deform_conv2d_backward": lambda *args: torch.ops.yolactpp.deform_conv2d_backward(*args),
    "fast_nms": lambda *args: torch.ops.yolactpp.fast_nms(*args),
}

_lock = threading.Lock()
_results: dict[tuple[str, str], str | None] = {}


_GRAD_NAMES = ("input", "offset", "weight", "bias", "mask")


def _deform_case(device: torch.device, dtype: torch.dtype) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(what, native, reference) for the output and the five gradients of a DCN with groups, offset
    groups, mask, bias and padding."""
    import torchvision

    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return ((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * scale).to(device, dtype)

    x, weight, bias = rand(2, 4, 7, 6), rand(6, 2, 3, 3), rand(6)
    offset, mask = rand(2, 2 * 2 * 9, 7, 6, scale=2.0), rand(2, 2 * 9, 7, 6).abs()
    grad = rand(2, 6, 7, 6)
    geometry = ((1, 1), (1, 1), (1, 1))
    native = KERNELS["deform_conv2d"](x, offset, weight, bias, *geometry, mask)
    native_grads = KERNELS["deform_conv2d_backward"](grad, x, offset, weight, mask, *geometry, True)
    leaves = [t.clone().requires_grad_() for t in (x, offset, weight, bias, mask)]
    with torch.enable_grad():
        lx, loffset, lweight, lbias, lmask = leaves
        reference = torchvision.ops.deform_conv2d(lx, loffset, lweight, lbias, padding=(1, 1), mask=lmask)
        reference_grads = torch.autograd.grad(reference, leaves, grad)
    pairs = [("output", native, reference.detach())]
    pairs += [(f"{name} gradient", *pair) for name, *pair in zip(_GRAD_NAMES, native_grads, reference_grads)]  # type: ignore[call-overload]
    return pairs  # type: ignore[return-value]


def _check_deform_conv2d(device: torch.device) -> str | None:
    # float64: exact logic; float32: the kernel users run (TF32 allowed for matmuls loosens it).
    tf32 = torch.backends.cuda.matmul.allow_tf32
    for dtype, bound in ((torch.float64, 1e-9), (torch.float32, 5e-2 if tf32 else 1e-4)):
        for what, native, reference in _deform_case(device, dtype):
            if native.shape != reference.shape or native.dtype != reference.dtype:
                return (
                    f"{dtype}: {what} {native.dtype}{list(native.shape)}, expected "
                    f"{reference.dtype}{list(reference.shape)}"
                )
            diff = (native - reference).abs().max().item()
            if not diff <= bound:  # NaN fails too
                return f"{dtype}: {what}: max abs difference {diff:.3g} from torchvision (bound {bound:g})"
    return None


def _check_fast_nms(device: torch.device) -> str | None:
    from yolactpp.ops._nms_reference import fast_nms_reference

    gen = torch.Generator().manual_seed(0)
    corner = torch.rand(64, 2, generator=gen) * 100
    boxes = torch.cat([corner, corner + torch.rand(64, 2, generator=gen) * 40 + 1], dim=1).to(device)
    scores = torch.rand(3, 64, generator=gen).to(device)
    native = KERNELS["fast_nms"](boxes, scores, 0.5, 32, 20)
    reference = fast_nms_reference(boxes, scores, 0.5, 32, 20)
    for name, a, b in zip(("indices", "classes", "scores"), native, reference, strict=True):  # type: ignore[call-overload]
        if a.shape != b.shape or not torch.equal(a, b):
            return f"{name} differ from the pure-PyTorch FastNMS ({list(a.shape)} vs {list(b.shape)} values)"
    return None


_CHECKS: dict[str, Callable[[torch.device], str | None]] = {
    "deform_conv2d": _check_deform_conv2d,
    "fast_nms": _check_fast_nms,
}
#: The ops :func:`verify` takes (``deform_conv2d``'s check runs its backward kernel too).
CHECKED_OPS = tuple(_CHECKS)


def verify(op: str, device: torch.device) -> str | None:
    """None when the native ``op`` agrees with its reference on ``device`` (checked once), else what went wrong."""
    key = (op, str(device))
    if key not in _results:
        with _lock:
            if key not in _results:
                try:
                    with torch.no_grad(), torch.autocast(device.type, enabled=False):
                        _results[key] = _CHECKS[op](device)
                except Exception as exc:  # a kernel error is a failed check
                    _results[key] = f"the kernel raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    return _results[key]


def failures(op: str, device_type: str) -> dict[str, str]:
    """Devices of ``device_type`` on which the native ``op`` failed its check: device -> what went wrong."""
    return {
        dev: why for (name, dev), why in _results.items() if name == op and why and dev.split(":")[0] == device_type
    }
