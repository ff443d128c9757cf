"""Custom operators with native (C++/CUDA) kernels and pure-PyTorch fallbacks.

``deform_conv2d`` is a drop-in for :func:`torchvision.ops.deform_conv2d`; ``fast_nms`` is the
class-wise FastNMS of YOLACT. :func:`backend_info` says which implementation runs and why;
:func:`set_backend` chooses between ``"auto"`` (native when built), ``"native"`` (required) and
``"fallback"`` (torchvision / pure PyTorch). ``yolactpp build-ops`` compiles the native kernels
for the torch in this environment when the installation came without them.
"""

from yolactpp.ops._loader import (
    BackendInfo,
    NativeOpsFallbackWarning,
    OpsUnavailableError,
    backend_info,
    get_backend,
    set_backend,
    use_backend,
)
from yolactpp.ops.deform_conv import deform_conv2d
from yolactpp.ops.fast_nms import fast_nms, fast_nms_reference

__all__ = [
    "BackendInfo",
    "NativeOpsFallbackWarning",
    "OpsUnavailableError",
    "backend_info",
    "deform_conv2d",
    "fast_nms",
    "fast_nms_reference",
    "get_backend",
    "set_backend",
    "use_backend",
]
