"""Anchor (prior) boxes, generated in float64 exactly as the original does."""

from __future__ import annotations

import math

import numpy as np
import torch

from yolactpp.config import AnchorConfig, ConfigError

__all__ = ["make_priors"]


def _level_priors(anchors: AnchorConfig, level: int, height: int, width: int, input_size: int) -> np.ndarray:
    # Per location: scales (outer) x aspect ratios (inner); w = s*sqrt(r)/size, h = s/sqrt(r)/size.
    sizes = []
    for scale in anchors.scales[level]:
        for ratio in anchors.aspect_ratios:
            root = math.sqrt(ratio)
            w = scale * root / input_size
            h = w if anchors.square else scale / root / input_size
            sizes.append((w, h))
    wh = np.asarray(sizes, dtype=np.float64)  # [A, 2]
    cx = (np.arange(width, dtype=np.float64) + 0.5) / width
    cy = (np.arange(height, dtype=np.float64) + 0.5) / height
    grid_y, grid_x = np.meshgrid(cy, cx, indexing="ij")  # rows outer, cols inner
    centers = np.stack([grid_x, grid_y], axis=-1).reshape(-1, 1, 2)  # [H*W, 1, 2]
    centers = np.broadcast_to(centers, (height * width, len(sizes), 2))
    sizes_b = np.broadcast_to(wh[None], (height * width, len(sizes), 2))
    return np.concatenate([centers, sizes_b], axis=-1).reshape(-1, 4)


def make_priors(
    anchors: AnchorConfig,
    feature_sizes: list[tuple[int, int]],
    input_size: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """All priors ``[P, 4]`` as (cx, cy, w, h) relative to the input, levels P3..P7 in order.

    Computed in float64 and rounded once to ``dtype``; scales are divided by the configured input
    size, not the feature size.
    """
    if len(feature_sizes) != len(anchors.scales):
        raise ConfigError(f"{len(feature_sizes)} feature maps but anchors for {len(anchors.scales)} levels")
    levels = [_level_priors(anchors, i, h, w, input_size) for i, (h, w) in enumerate(feature_sizes)]
    return torch.from_numpy(np.concatenate(levels, axis=0)).to(device=device, dtype=dtype)
