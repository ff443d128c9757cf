"""Per-image detection: confidence filter, then class-wise FastNMS."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from yolactpp import ops
from yolactpp.config import DetectConfig
from yolactpp.detect.decode import decode_boxes

__all__ = ["RawDetections", "detect"]


@dataclass
class RawDetections:
    """Detections of one image before mask assembly, sorted by descending score.

    ``boxes`` are relative (x1, y1, x2, y2), ``coefficients`` the mask coefficients,
    ``labels`` 0-based foreground classes.
    """

    boxes: torch.Tensor
    coefficients: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def detect(
    loc: torch.Tensor,
    conf: torch.Tensor,
    coefficients: torch.Tensor,
    priors: torch.Tensor,
    settings: DetectConfig,
) -> RawDetections:
    """Detections of one image.

    ``loc`` [P, 4] box deltas, ``conf`` [P, C+1] softmax scores (background first),
    ``coefficients`` [P, k], ``priors`` [P, 4]. A prior survives the pre-filter when its best
    foreground score is strictly above ``conf_threshold``; FastNMS then runs per class with no
    further score threshold, as the original does.
    """
    class_scores = conf[:, 1:]
    keep = class_scores.amax(dim=1) > settings.conf_threshold
    candidates = keep.nonzero().squeeze(1)
    boxes = decode_boxes(loc[candidates], priors[candidates])
    scores = class_scores[candidates].t()  # [C, K]
    index, labels, kept_scores = ops.fast_nms(
        boxes,
        scores,
        iou_threshold=settings.iou_threshold,
        top_k=settings.top_k,
        max_detections=settings.max_detections,
    )
    return RawDetections(
        boxes=boxes[index],
        coefficients=coefficients[candidates[index]],
        labels=labels,
        scores=kept_scores,
    )
