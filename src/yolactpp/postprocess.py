"""From detections to image-space results: masks, crop, YOLACT++ re-scoring, pixel boxes."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from yolactpp.heads.maskiou import MaskIoUNet

__all__ = [
    "assemble_masks",
    "boxes_to_pixels",
    "crop_masks",
    "mask_iou_scores",
    "sanitize_coordinates",
    "upsample_masks",
]

def sanitize_coordinates(
    a: torch.Tensor, b: torch.Tensor, size: int, padding: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relative coordinates -> ordered absolute ones, padded, clamped below at 0 / above at ``size``."""
    a = a * size
    b = b * size
    low = torch.clamp(torch.minimum(a, b) - padding, min=0)
    high = torch.clamp(torch.maximum(a, b) + padding, max=size)
    return low, high


def crop_masks(masks: torch.Tensor, boxes: torch.Tensor, padding: float = 1.0) -> torch.Tensor:
    """Zero each mask ``[N, H, W]`` outside its relative box, padded by ``padding`` mask pixels."""
    _, height, width = masks.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height, padding)
    cols = torch.arange(width, device=masks.device, dtype=x1.dtype)
    rows = torch.arange(height, device=masks.device, dtype=y1.dtype)
    inside_x = (cols[None, :] >= x1[:, None]) & (cols[None, :] < x2[:, None])  # [N, W]
    inside_y = (rows[None, :] >= y1[:, None]) & (rows[None, :] < y2[:, None])  # [N, H]
    inside = inside_y[:, :, None] & inside_x[:, None, :]
    return masks * inside.to(masks.dtype)


def assemble_masks(proto: torch.Tensor, coefficients: torch.Tensor, boxes: torch.Tensor, crop: bool = True) -> torch.Tensor:
    """Soft masks ``[N, Hp, Wp]`` = sigmoid(prototypes x coefficients), cropped to the boxes."""
    masks = torch.sigmoid(proto @ coefficients.t()).permute(2, 0, 1)
    if crop:
        masks = crop_masks(masks, boxes)
    return masks.contiguous()


def mask_iou_scores(maskiou_net: MaskIoUNet, soft_masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """YOLACT++ predicted mask IoU of each detection, for its own class."""
    if soft_masks.shape[0] == 0:
        return soft_masks.new_empty(0)
    per_class = maskiou_net(soft_masks.unsqueeze(1))
    return per_class.gather(1, labels.unsqueeze(1)).squeeze(1)


# Masks whose window exceeds 1/_WHOLE_IMAGE_FRACTION of the image are upsampled whole by
# F.interpolate (measured on CPU: ~8x faster per pixel than the windowed gathers).
_WHOLE_IMAGE_FRACTION = 8


def _source_index(in_size: int, out_size: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    # Bilinear source taps per output index, computed as torch's upsample kernel does
    # (align_corners=False): src = max(0, (dst + 0.5) * in / out - 0.5).
    scale = torch.tensor(in_size, dtype=dtype) / torch.tensor(out_size, dtype=dtype)
    src = ((torch.arange(out_size, dtype=dtype) + 0.5) * scale - 0.5).clamp(min=0)
    low = src.to(torch.int64)
    frac = (src - low.to(dtype)).clamp(0, 1)
    high = low + (low < in_size - 1).to(torch.int64)
    return low.to(device), high.to(device), (1 - frac).to(device), frac.to(device)


def upsample_masks(soft_masks: torch.Tensor, height: int, width: int, threshold: float = 0.5) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling to the image size, then ``> threshold``: bool [N, H, W].

    Cropped masks are zero outside their box, so only the window of output pixels whose bilinear
    taps touch a nonzero mask pixel can be set. Small windows are computed alone, with torch's
    bilinear arithmetic (horizontal, then vertical blend); masks whose window covers much of the
    image go through ``F.interpolate`` itself, which is several times faster per pixel.
    """
    n, in_h, in_w = soft_masks.shape
    device = soft_masks.device
    if n == 0:
        return torch.zeros((0, height, width), dtype=torch.bool, device=device)
    y0, y1, wy0, wy1 = _source_index(in_h, height, soft_masks.dtype, device)
    x0, x1, wx0, wx1 = _source_index(in_w, width, soft_masks.dtype, device)
    nonzero = soft_masks != 0
    rows_any, cols_any = nonzero.any(dim=2), nonzero.any(dim=1)  # [N, Hp], [N, Wp]
    rows_first = torch.where(rows_any.any(1), rows_any.to(torch.int8).argmax(1), in_h)
    rows_last = in_h - 1 - rows_any.flip(1).to(torch.int8).argmax(1)
    cols_first = cols_any.to(torch.int8).argmax(1)
    cols_last = in_w - 1 - cols_any.flip(1).to(torch.int8).argmax(1)
    # Output range whose taps (low, high) reach [first, last]: high >= first and low <= last.
    top = torch.searchsorted(y1, rows_first, right=False).tolist()
    bottom = torch.searchsorted(y0, rows_last, right=True).tolist()
    left = torch.searchsorted(x1, cols_first, right=False).tolist()
    right = torch.searchsorted(x0, cols_last, right=True).tolist()
    # Masks with no nonzero pixel get an empty window (rows_first = in_h puts top at height).
    small: list[int] = []
    large: list[int] = []
    for i in range(n):
        if top[i] < bottom[i] and left[i] < right[i]:
            area = (bottom[i] - top[i]) * (right[i] - left[i])
            (large if area * _WHOLE_IMAGE_FRACTION > height * width else small).append(i)
    if large or device.type != "cpu":
        out = torch.empty((n, height, width), dtype=torch.bool, device=device)
        for i in sorted(set(range(n)) - set(large)):
            out[i].zero_()
    else:
        # numpy's zeros come from calloc: the kernel hands out zero pages lazily, so the parts
        # outside every (small) window cost nothing until read, unlike torch's memset.
        out = torch.from_numpy(np.zeros((n, height, width), dtype=np.bool_))
    for i in large:  # one at a time: the float buffer stays in cache (1.7x faster than 9 at once)
        up = F.interpolate(soft_masks[i][None, None], size=(height, width), mode="bilinear", align_corners=False)
        torch.gt(up[0, 0], threshold, out=out[i])
    for i in small:
        ys, xs = slice(top[i], bottom[i]), slice(left[i], right[i])
        mask = soft_masks[i]
        horizontal_low = mask[y0[ys]]
        horizontal_high = mask[y1[ys]]
        row_low = horizontal_low[:, x0[xs]] * wx0[xs] + horizontal_low[:, x1[xs]] * wx1[xs]
        row_high = horizontal_high[:, x0[xs]] * wx0[xs] + horizontal_high[:, x1[xs]] * wx1[xs]
        value = row_low * wy0[ys, None] + row_high * wy1[ys, None]
        out[i, ys, xs] = value > threshold
    return out


def boxes_to_pixels(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Relative boxes -> (x1, y1, x2, y2) pixels, ordered and clamped as the original (no int cast)."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    return torch.stack([x1, y1, x2, y2], dim=1)
