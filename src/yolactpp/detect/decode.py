"""Box decoding (SSD-style deltas with variances 0.1 / 0.2)."""

from __future__ import annotations

import torch

__all__ = ["decode_boxes"]

_CENTER_VARIANCE = 0.1
_SIZE_VARIANCE = 0.2


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Deltas ``[P, 4]`` + priors ``(cx, cy, w, h)`` -> boxes ``(x1, y1, x2, y2)``, relative, unclamped.

    Evaluated in the original's operation order (``x2 = x1 + w``), so float64 results match bit
    for bit.
    """
    centers = priors[:, :2] + loc[:, :2] * _CENTER_VARIANCE * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * _SIZE_VARIANCE)
    top_left = centers - sizes / 2
    return torch.cat([top_left, sizes + top_left], dim=1)
