"""The pure-PyTorch FastNMS: the definition the native kernels are checked against.

Apart from :mod:`yolactpp.ops.fast_nms` (which dispatches to the kernel) so that the kernel
self-check (:mod:`yolactpp.ops._selfcheck`) can compare with it without importing the loader's
callers back.
"""

from __future__ import annotations

import torch

from yolactpp.errors import InvalidArgumentError

__all__ = ["check_nms_inputs", "fast_nms_reference", "pairwise_iou"]


def pairwise_iou(boxes: torch.Tensor) -> torch.Tensor:
    """IoU of every pair within each class: boxes ``[C, K, 4]`` -> ``[C, K, K]``.

    Areas are ``(x2 - x1) * (y2 - y1)`` with no +1; intersections clamp at 0.
    """
    # One [C, K, K] grid per coordinate (not [C, K, K, 2]): the same arithmetic, but elementwise
    # ops over a last dimension of K vectorize where a last dimension of 2 does not (onnxruntime's
    # broadcasting Max/Min: ~50x faster for 80 classes x 200 boxes).
    x1, y1, x2, y2 = boxes.unbind(-1)
    w = (torch.minimum(x2[:, :, None], x2[:, None, :]) - torch.maximum(x1[:, :, None], x1[:, None, :])).clamp(min=0)
    h = (torch.minimum(y2[:, :, None], y2[:, None, :]) - torch.maximum(y1[:, :, None], y1[:, None, :])).clamp(min=0)
    inter = w * h
    area = (x2 - x1) * (y2 - y1)
    union = area[:, :, None] + area[:, None, :] - inter
    return inter / union


def check_nms_inputs(boxes: torch.Tensor, scores: torch.Tensor, top_k: int, max_detections: int) -> None:
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise InvalidArgumentError(f"boxes must be [K, 4], got {list(boxes.shape)}")
    if scores.dim() != 2 or scores.shape[1] != boxes.shape[0]:
        raise InvalidArgumentError(f"scores must be [C, K] with K = {boxes.shape[0]} boxes, got {list(scores.shape)}")
    if top_k < 1 or max_detections < 0:
        raise InvalidArgumentError(f"top_k must be >= 1 and max_detections >= 0, got {top_k}, {max_detections}")


def fast_nms_reference(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_detections: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pure-PyTorch FastNMS; the definition the native kernels must equal bit for bit.

    ``boxes`` [K, 4] (x1, y1, x2, y2), ``scores`` [C, K]. Per class, the ``top_k`` best boxes are
    kept and a box survives when its IoU with every higher-scored box of its class (suppressed
    or not) is <= ``iou_threshold``. Survivors of all classes are sorted by score (stable) and cut
    to ``max_detections``. Returns (box index into K, class, score), each ``[N]``.
    """
    check_nms_inputs(boxes, scores, top_k, max_detections)
    num_classes, num_boxes = scores.shape
    if num_boxes == 0 or num_classes == 0:
        empty = torch.empty(0, dtype=torch.int64, device=boxes.device)
        return empty, empty.clone(), scores.new_empty(0)
    sorted_scores, order = scores.sort(dim=1, descending=True, stable=True)
    order = order[:, :top_k]
    sorted_scores = sorted_scores[:, :top_k]
    k = order.shape[1]
    class_boxes = boxes[order.reshape(-1)].view(num_classes, k, 4)
    iou = pairwise_iou(class_boxes).triu_(diagonal=1)
    keep = iou.amax(dim=1) <= iou_threshold
    labels = torch.arange(num_classes, device=boxes.device)[:, None].expand_as(keep)[keep]
    index = order[keep]
    kept_scores, rank = sorted_scores[keep].sort(descending=True, stable=True)
    rank = rank[:max_detections]
    return index[rank], labels[rank], kept_scores[:max_detections]
