"""Box coding: SSD-style deltas with variances 0.1 (centres) / 0.2 (sizes), both directions.

Decoding serves detection; encoding builds the training targets. Both live here so the two
can never disagree about the variances.
"""

from __future__ import annotations

import torch

__all__ = ["BOX_VARIANCES", "decode_boxes", "encode_boxes"]

_CENTER_VARIANCE = 0.1
_SIZE_VARIANCE = 0.2
#: (centre, size) variances of the original's box coding; fixed, as in every released model.
BOX_VARIANCES = (_CENTER_VARIANCE, _SIZE_VARIANCE)


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Deltas ``[P, 4]`` + priors ``(cx, cy, w, h)`` -> boxes ``(x1, y1, x2, y2)``, relative, unclamped.

    Evaluated in the original's operation order (``x2 = x1 + w``), so float64 results match bit
    for bit.
    """
    centers = priors[:, :2] + loc[:, :2] * _CENTER_VARIANCE * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[:, 2:] * _SIZE_VARIANCE)
    top_left = centers - sizes / 2
    return torch.cat([top_left, sizes + top_left], dim=1)


def encode_boxes(boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Boxes ``(x1, y1, x2, y2)`` ``[P, 4]`` + their priors ``(cx, cy, w, h)`` -> the deltas
    :func:`decode_boxes` turns back into them (the regression targets of training).

    Operation order as the original's ``encode``; a box with zero width or height gives an
    infinite size delta (the data pipeline drops such boxes before they get here).
    """
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2 - priors[:, :2]) / (_CENTER_VARIANCE * priors[:, 2:])
    sizes = torch.log((boxes[:, 2:] - boxes[:, :2]) / priors[:, 2:]) / _SIZE_VARIANCE
    return torch.cat([centers, sizes], dim=1)
