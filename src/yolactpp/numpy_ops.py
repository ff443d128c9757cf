"""Torch-free twins of preprocessing and postprocessing, for runtimes that run without torch.

The exported-model predictor (:mod:`yolactpp.export.predictor`) and numpy-backed
:class:`~yolactpp.results.Detections` use these. Each follows its torch counterpart's arithmetic
in float32 (bilinear taps as torch's ``align_corners=False`` kernel computes them, the same
operation order), so results agree with the torch path to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yolactpp.config import PreprocessConfig

__all__ = ["boxes_to_pixels", "preprocess", "resize_bilinear", "upsample_masks"]


def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # src = max(0, (dst + 0.5) * in / out - 0.5) in float32, as torch's upsample kernel.
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    low = np.minimum(src.astype(np.int64), in_size - 1)
    frac = np.clip(src - low.astype(np.float32), 0, 1).astype(np.float32)
    high = low + (low < in_size - 1)
    return low, high, (np.float32(1) - frac), frac


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """H x W x C array -> float32 ``height`` x ``width`` x C (bilinear, align_corners=False, no antialias)."""
    y0, y1, wy0, wy1 = _taps(image.shape[0], height)
    x0, x1, wx0, wx1 = _taps(image.shape[1], width)
    # The four taps are gathered from the source in its own dtype (uint8 for images: a quarter of
    # the memory traffic of converting the whole image first), then combined in float32 in torch's order.
    top, bottom = image.take(y0, axis=0), image.take(y1, axis=0)
    wx0, wx1 = wx0[None, :, None], wx1[None, :, None]

    def taps(rows: np.ndarray) -> np.ndarray:
        return rows.take(x0, axis=1).astype(np.float32) * wx0 + rows.take(x1, axis=1).astype(np.float32) * wx1

    row_low, row_high = taps(top), taps(bottom)
    return row_low * wy0[:, None, None] + row_high * wy1[:, None, None]


def preprocess(images: Sequence[np.ndarray], config: PreprocessConfig) -> np.ndarray:
    """RGB uint8 arrays -> the normalized float32 batch ``[B, 3, S, S]`` (see :func:`yolactpp.preprocess.preprocess`)."""
    size = config.size
    batch = np.stack([resize_bilinear(a, size, size) for a in images]).transpose(0, 3, 1, 2)
    if config.mean is not None and config.std is not None:
        mean = np.asarray(config.mean, dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(config.std, dtype=np.float32).reshape(1, 3, 1, 1)
        batch = (batch - mean) / std
    else:
        batch = batch / np.float32(255)
    return np.ascontiguousarray(batch, dtype=np.float32)


def upsample_masks(soft_masks: np.ndarray, height: int, width: int, threshold: float = 0.5) -> np.ndarray:
    """Soft masks ``[N, Hp, Wp]`` -> bool ``[N, height, width]``: bilinear upsampling, then ``> threshold``.

    Only the window of output pixels whose taps reach a nonzero mask pixel is computed (masks are
    cropped, zero outside their box); see :func:`yolactpp.postprocess.upsample_masks`.
    """
    n, in_h, in_w = soft_masks.shape
    out = np.zeros((n, height, width), dtype=bool)
    if n == 0:
        return out
    masks = soft_masks.astype(np.float32, copy=False)
    y0, y1, wy0, wy1 = _taps(in_h, height)
    x0, x1, wx0, wx1 = _taps(in_w, width)
    for i in range(n):
        rows = np.flatnonzero(masks[i].any(axis=1))
        cols = np.flatnonzero(masks[i].any(axis=0))
        if rows.size == 0:
            continue
        # Output range whose taps (low, high) reach [first, last]: high >= first and low <= last.
        top, bottom = int(np.searchsorted(y1, rows[0])), int(np.searchsorted(y0, rows[-1], side="right"))
        left, right = int(np.searchsorted(x1, cols[0])), int(np.searchsorted(x0, cols[-1], side="right"))
        if top >= bottom or left >= right:  # no output pixel reads this mask's nonzero part
            continue
        ys, xs = slice(top, bottom), slice(left, right)
        # Each source row's horizontal pass is computed once (not once per output row reading it):
        # the same products as torch's kernel, ~2x less work for masks that fill the image.
        first, last = int(y0[ys][0]), int(y1[ys][-1])
        source = masks[i, first : last + 1]
        across = source[:, x0[xs]] * wx0[xs] + source[:, x1[xs]] * wx1[xs]
        row_low, row_high = across[y0[ys] - first], across[y1[ys] - first]
        out[i, ys, xs] = (row_low * wy0[ys, None] + row_high * wy1[ys, None]) > threshold
    return out


def _sanitize(a: np.ndarray, b: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    a = a * np.float32(size)
    b = b * np.float32(size)
    return np.maximum(np.minimum(a, b), 0), np.minimum(np.maximum(a, b), np.float32(size))


def boxes_to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Relative boxes ``[N, 4]`` -> pixel (x1, y1, x2, y2), ordered and clamped as the torch version."""
    x1, x2 = _sanitize(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = _sanitize(boxes[:, 1], boxes[:, 3], height)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32, copy=False)
