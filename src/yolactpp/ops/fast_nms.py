"""Class-wise FastNMS (YOLACT): suppression decided in one IoU-matrix pass per class."""

from __future__ import annotations

import torch

from yolactpp.ops._loader import use_native
from yolactpp.ops._nms_reference import check_nms_inputs, fast_nms_reference, pairwise_iou

__all__ = ["fast_nms", "fast_nms_reference", "pairwise_iou"]

_NATIVE_DTYPES = (torch.float32, torch.float64)


def fast_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FastNMS (see :func:`fast_nms_reference`), on the native kernel when available.

    The native kernels take float32 and float64 (equal to the reference bit for bit); other
    dtypes always run the reference.
    """
    check_nms_inputs(boxes, scores, top_k, max_detections)
    native_dtype = boxes.dtype in _NATIVE_DTYPES and scores.dtype == boxes.dtype
    if native_dtype and use_native("fast_nms", boxes.device):
        index, labels, kept = torch.ops.yolactpp.fast_nms(
            boxes, scores, float(iou_threshold), int(top_k), int(max_detections)
        )
        return index, labels, kept
    return fast_nms_reference(boxes, scores, iou_threshold, top_k, max_detections)
