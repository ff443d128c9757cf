"""Image in -> normalized network input.

Accepted images: PIL images of any mode, file paths, H x W x 3 (RGB) or H x W (grayscale) uint8
arrays, and C x H x W uint8 tensors (C = 1 or 3). Conversions with one obvious meaning are done
and documented; anything else raises :class:`InvalidImageError` naming the problem.

- Grayscale (PIL "L", "1", 2-D arrays, 1-channel tensors) is repeated over three channels.
- Alpha is dropped (RGBA, LA, palette with transparency): the colour channels are used as they
  are, not composited, exactly as OpenCV's ``imread`` (the original's reader) does.
- CMYK, YCbCr, LAB, HSV and palette images are converted to RGB with Pillow.
- Integer images wider than 8 bits (PIL "I;16*" / "I", uint16 arrays) are read by their value
  range: values within 0..255 are 8-bit values stored wide and kept as they are; values up to
  65535 are 16-bit and keep their top 8 bits, as OpenCV's ``imread`` does; others are refused.
- Floating-point PIL images (mode "F") within 0..1 are scaled by 255, within 0..255 rounded;
  others are refused (float arrays and tensors are refused: convert them to uint8 yourself).
- Paths to folders and URLs are refused (yolactpp does not download images). Files with more
  pixels than Pillow's decompression-bomb limit raise :class:`ImageTooLargeError`.
- File paths are opened with Pillow and EXIF orientation applied (as modern OpenCV does).
"""

from __future__ import annotations

import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from yolactpp._facts import is_url
from yolactpp.config import PreprocessConfig
from yolactpp.errors import YolactppError

__all__ = [
    "MIN_IMAGE_SIDE",
    "ImageInput",
    "ImageTooLargeError",
    "InvalidImageError",
    "decode_image",
    "load_image",
    "preprocess",
    "to_rgb_array",
]

#: Images smaller than this on either side carry no usable content and are rejected.
MIN_IMAGE_SIDE = 2


if TYPE_CHECKING:
    import torch

# torch is imported lazily (exported models predict without it); "torch.Tensor" stays a forward reference.
ImageInput: TypeAlias = Union[Image.Image, np.ndarray, "torch.Tensor", str, os.PathLike]


class InvalidImageError(YolactppError, ValueError):
    """An input image that cannot be interpreted unambiguously."""


class ImageTooLargeError(InvalidImageError):
    """An image file with more pixels than Pillow's decompression-bomb limit allows.

    ``pixels`` is the image's pixel count (``None`` if Pillow did not say), ``limit`` the largest
    count that opens. Files over ``PIL.Image.MAX_IMAGE_PIXELS`` open with a Pillow warning; files
    over twice that raise this error. For files you trust, raise the limit with
    ``PIL.Image.MAX_IMAGE_PIXELS = <pixels>`` (or ``None``: no limit).
    """

    def __init__(self, message: str, pixels: int | None, limit: int) -> None:
        super().__init__(message)
        self.pixels = pixels
        self.limit = limit

    @classmethod
    def from_pil(cls, source: str, exc: Exception) -> ImageTooLargeError:
        """The error for Pillow's ``DecompressionBombError`` ``exc`` raised opening ``source``."""
        match = re.search(r"\((\d+) pixels\)", str(exc))  # "Image size (N pixels) exceeds limit of ..."
        pixels = int(match.group(1)) if match else None
        limit = 2 * int(Image.MAX_IMAGE_PIXELS or 0)
        size = f"{pixels:,} pixels" if pixels is not None else "more pixels than allowed"
        needed = max(pixels or 0, limit + 1)
        return cls(
            f"{source} is too large to open safely: {size}, over the decompression-bomb limit of {limit:,} "
            f"(2 x PIL.Image.MAX_IMAGE_PIXELS). If you trust the file, raise the limit: "
            f"PIL.Image.MAX_IMAGE_PIXELS = {needed} in Python (None: no limit), "
            f"or yolactpp predict --max-image-pixels {needed}",
            pixels,
            limit,
        )


def load_image(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image file with EXIF orientation applied."""
    text = os.fspath(path)
    if is_url(text):
        raise InvalidImageError(
            f"{text} is a URL; yolactpp does not download images: fetch it first and pass the file, "
            "its bytes through yolactpp.preprocess.decode_image, or a PIL image"
        )
    p = Path(path)
    if p.is_dir():
        raise InvalidImageError(f"{p} is a directory, not an image file")
    if not p.is_file():
        raise InvalidImageError(f"image file not found: {p}")
    return _open_image(p, str(p))


def decode_image(data: bytes, source: str = "image bytes") -> Image.Image:
    """Decode an encoded image (PNG, JPEG, ... file contents) exactly as :func:`load_image` opens a file.

    ``source`` names the data in error messages (e.g. the path it was read from).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImageError(f"{source}: expected encoded image bytes, got {type(data).__name__}")
    return _open_image(io.BytesIO(data), source)


def _open_image(file: Path | io.BytesIO, source: str) -> Image.Image:
    try:
        with Image.open(file) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError.from_pil(source, exc) from None
    except UnidentifiedImageError as exc:
        detail = "unknown image format or not an image" if isinstance(file, io.BytesIO) else str(exc)
        raise InvalidImageError(f"cannot read {source} as an image: {detail}") from None
    except OSError as exc:
        raise InvalidImageError(f"cannot read {source} as an image: {exc}") from None


def _integer_to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """8- or 16-bit values (in an integer container of any width) -> uint8, by their range.

    Values within 0..255 are 8-bit values stored wide and are kept; values up to 65535 are 16-bit
    and keep their top 8 bits, as OpenCV's ``imread`` does; anything else is refused.
    """
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 65535:
        raise InvalidImageError(f"{what} has values {low}..{high}, outside the 16-bit range 0..65535")
    if high <= 255:
        return values.astype(np.uint8)
    return (values.astype(np.uint32) >> 8).astype(np.uint8)


def _float_to_uint8(values: np.ndarray, what: str) -> np.ndarray:
    """Floating-point values in 0..1 (scaled by 255) or 0..255 (rounded) -> uint8; else refused."""
    if not np.isfinite(values).all():
        raise InvalidImageError(f"{what} contains NaN or infinite values")
    if values.size == 0:
        return values.astype(np.uint8)
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 255:
        raise InvalidImageError(
            f"{what} has values {low:g}..{high:g}; expected 0..1 or 0..255 (rescale it to one of these first)"
        )
    scale = 255.0 if high <= 1.0 else 1.0
    return np.clip(np.rint(values.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def _pil_to_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _integer_to_uint8(np.asarray(img), f"PIL image (mode {mode})")
    if mode == "F":
        return _float_to_uint8(np.asarray(img), "PIL image (mode F)")
    if mode == "RGB":
        return np.asarray(img)
    if mode in ("L", "1"):
        return np.asarray(img.convert("L"))
    if mode in ("RGBA", "RGBa", "RGBX", "LA", "La", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV"):
        return np.asarray(img.convert("RGB"))
    try:
        return np.asarray(img.convert("RGB"))
    except (ValueError, OSError) as exc:
        raise InvalidImageError(f"cannot convert a PIL image of mode {mode!r} to RGB: {exc}") from None


def _array_to_rgb(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise InvalidImageError(f"{what} contains NaN or infinite values")
        raise InvalidImageError(
            f"{what} has dtype {arr.dtype}; expected uint8 (scale to 0..255 and convert, "
            "e.g. (x * 255).round().astype(np.uint8) for values in [0, 1])"
        )
    if arr.dtype == np.uint16:
        arr = _integer_to_uint8(arr, what)
    if arr.dtype != np.uint8:
        raise InvalidImageError(f"{what} has dtype {arr.dtype}; expected uint8 (or uint16)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        hint = " (drop alpha with arr[..., :3])" if arr.ndim == 3 and arr.shape[2] == 4 else ""
        raise InvalidImageError(f"{what} must be H x W x 3 (RGB) or H x W (grayscale), got shape {arr.shape}{hint}")
    return arr


def to_rgb_array(image: Any) -> np.ndarray:
    """Any accepted image -> H x W x 3 uint8 RGB array (see module docs for conversions)."""
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    if isinstance(image, Image.Image):
        try:
            image.load()  # an opened file is decoded only now: a truncated one fails here
        except (OSError, ValueError, SyntaxError) as exc:
            source = getattr(image, "filename", None) or "PIL image"
            raise InvalidImageError(f"cannot read {source} as an image: {exc}") from None
        arr = _array_to_rgb(_pil_to_array(image), f"PIL image (mode {image.mode})")
    elif isinstance(image, np.ndarray):
        arr = _array_to_rgb(image, "image array")
    elif "torch" in sys.modules and isinstance(image, sys.modules["torch"].Tensor):
        import torch

        t = image.detach()
        if t.dim() != 3 or t.shape[0] not in (1, 3):
            raise InvalidImageError(f"image tensor must be C x H x W with C = 1 or 3, got shape {tuple(t.shape)}")
        if t.is_floating_point():
            if not torch.isfinite(t).all():
                raise InvalidImageError("image tensor contains NaN or infinite values")
            raise InvalidImageError(
                f"image tensor has dtype {t.dtype}; expected torch.uint8 (scale to 0..255 and convert, "
                "e.g. (x * 255).round().to(torch.uint8) for values in [0, 1])"
            )
        if t.dtype != torch.uint8:
            raise InvalidImageError(f"image tensor has dtype {t.dtype}; expected torch.uint8")
        arr = _array_to_rgb(t.cpu().permute(1, 2, 0).numpy(), "image tensor")
    else:
        raise InvalidImageError(
            f"unsupported image type {type(image).__name__}; pass a PIL image, a path, "
            "an H x W x 3 uint8 array or a C x H x W uint8 tensor"
        )
    height, width = arr.shape[:2]
    if height < MIN_IMAGE_SIDE or width < MIN_IMAGE_SIDE:
        raise InvalidImageError(
            f"image is {width} x {height} pixels; at least {MIN_IMAGE_SIDE} x {MIN_IMAGE_SIDE} is needed"
        )
    return arr


@dataclass(frozen=True)
class PreparedBatch:
    """Network input ``[B, 3, S, S]`` and each image's original (height, width)."""

    tensor: torch.Tensor
    sizes: list[tuple[int, int]]


def preprocess(
    images: list[np.ndarray],
    config: PreprocessConfig,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> PreparedBatch:
    """RGB uint8 arrays -> resized, normalized batch in ``dtype`` on ``device``.

    Each image is resized to ``size`` x ``size`` (bilinear, align_corners=False, no antialias) on
    0..255 values, then normalized per channel (or divided by 255), as the original does.
    """
    import torch
    import torch.nn.functional as F

    dtype = torch.float32 if dtype is None else dtype
    size = config.size
    batch = []
    for arr in images:
        if not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, order="C")
        x = torch.from_numpy(arr).to(device=device)
        x = x.permute(2, 0, 1).unsqueeze(0).to(dtype)
        batch.append(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))
    x = torch.cat(batch, dim=0)
    if config.mean is not None and config.std is not None:
        mean = torch.tensor(config.mean, dtype=dtype, device=device).view(1, 3, 1, 1)
        std = torch.tensor(config.std, dtype=dtype, device=device).view(1, 3, 1, 1)
        x = (x - mean) / std
    else:
        x = x / 255
    return PreparedBatch(x.contiguous(), [tuple(a.shape[:2]) for a in images])
