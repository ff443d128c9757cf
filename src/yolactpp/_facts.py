"""Small facts several layers share: file suffixes, the URL test, dtype names, an error's first line.

The lowest module of the package (standard library only), so that the library, the CLI and the
integrations read one definition instead of keeping copies that drift apart.
"""

from __future__ import annotations

import re

__all__ = [
    "EXPORTED_SUFFIXES",
    "EXPORT_DTYPES",
    "IMAGE_SUFFIXES",
    "MODEL_DTYPES",
    "VIDEO_SUFFIXES",
    "first_line",
    "is_url",
]

#: Image files a folder or glob input picks up (the CLI, calibration folders, Ray file listings).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Video containers read with PyAV.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Exported model files: ONNX (onnxruntime, int8 included) and AOTInductor packages.
EXPORTED_SUFFIXES = (".onnx", ".pt2")
#: The torch dtypes an eager model predicts in, by name (``model.to(getattr(torch, name))``).
MODEL_DTYPES = ("float32", "float64", "bfloat16", "float16")
#: The precisions a model can be exported in (int8 comes from quantizing a float32 ONNX file).
EXPORT_DTYPES = ("float32", "float16")

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: object) -> bool:
    """Whether ``text`` is a string of the form ``scheme://...`` (http, s3, gs, rtsp, ...)."""
    return isinstance(text, str) and _URL.match(text) is not None


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if it has none): enough
    to name a third-party failure in one of our one-line errors."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
