"""From detections to image-space results: masks, crop, YOLACT++ re-scoring, pixel boxes."""

from __future__ import annotations

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

#: Masks are upsampled in chunks of this many to bound peak memory; results are identical.
_UPSAMPLE_CHUNK_PIXELS = 32 * 1024 * 1024


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


def upsample_masks(soft_masks: torch.Tensor, height: int, width: int, threshold: float = 0.5) -> torch.Tensor:
    """Bilinear (align_corners=False) upsampling to the image size, then ``> threshold``: bool [N, H, W]."""
    n = soft_masks.shape[0]
    out = torch.empty((n, height, width), dtype=torch.bool, device=soft_masks.device)
    step = max(1, _UPSAMPLE_CHUNK_PIXELS // max(1, height * width))
    for start in range(0, n, step):
        chunk = soft_masks[start : start + step].unsqueeze(0)
        up = F.interpolate(chunk, size=(height, width), mode="bilinear", align_corners=False)
        out[start : start + step] = up.squeeze(0) > threshold
    return out


def boxes_to_pixels(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Relative boxes -> (x1, y1, x2, y2) pixels, ordered and clamped as the original (no int cast)."""
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    return torch.stack([x1, y1, x2, y2], dim=1)
