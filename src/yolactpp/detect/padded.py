"""Fixed-size batched detection for exported graphs: the same FastNMS, no data-dependent shapes.

:func:`yolactpp.detect.detect` compacts the candidates (``nonzero``) and returns as many
detections as survive. An exported graph needs static shapes, so here every prior stays in place:
priors that fail the confidence pre-filter (or classes left out by ``class_mask``) get the score
-1, below every real softmax score. Sorting puts them after all real candidates, where they
suppress nothing (FastNMS only lets higher-scored boxes suppress), and they are marked invalid.
The result is padded to ``max_detections`` rows plus a per-image ``count``; its first ``count``
rows equal :func:`yolactpp.detect.detect`'s output (same order, stable ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from yolactpp.detect.decode import decode_boxes
from yolactpp.ops.fast_nms import pairwise_iou

__all__ = ["PaddedDetections", "padded_detect"]

_INVALID = -1.0


@dataclass
class PaddedDetections:
    """``boxes`` [B, M, 4] relative, ``coefficients`` [B, M, k], ``labels`` [B, M] int64,
    ``scores`` [B, M], ``count`` [B] int64: rows past ``count`` are padding."""

    boxes: torch.Tensor
    coefficients: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    count: torch.Tensor


def _sorted_desc(x: torch.Tensor, k: int, use_topk: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest along the last dim, ties in index order.

    ONNX ``TopK`` breaks ties by the lower index (spec), so exported graphs use it; eager torch's
    ``topk`` does not promise that, so torch runs a stable sort.
    """
    if use_topk:
        values, index = torch.topk(x, k, dim=-1, largest=True, sorted=True)
        return values, index
    values, index = torch.sort(x, dim=-1, descending=True, stable=True)
    return values[..., :k], index[..., :k]


def padded_detect(
    loc: torch.Tensor,
    conf: torch.Tensor,
    coefficients: torch.Tensor,
    priors: torch.Tensor,
    *,
    conf_threshold: torch.Tensor,
    iou_threshold: torch.Tensor,
    top_k: torch.Tensor,
    class_mask: torch.Tensor,
    max_top_k: int,
    max_detections: int,
    use_topk: bool = False,
) -> PaddedDetections:
    """Batched :func:`yolactpp.detect.detect` with static output shapes.

    ``loc`` [B, P, 4], ``conf`` [B, P, C+1] (background first), ``coefficients`` [B, P, k],
    ``priors`` [P, 4]. ``conf_threshold``, ``iou_threshold`` (float scalars), ``top_k`` (int64
    scalar, at most ``max_top_k``) and ``class_mask`` ([C] bool, the classes to detect) are
    tensors so that an exported graph takes them as inputs.
    """
    batch, num_priors, _ = loc.shape
    num_classes = conf.shape[-1] - 1
    invalid = torch.full((), _INVALID, dtype=conf.dtype, device=conf.device)
    # Left-out classes get the invalid score arithmetically (s * 1 - 0 = s, s * 0 - 1 = -1; a
    # prior's softmax row is all finite or all NaN, so this equals a select wherever it matters):
    # onnxruntime's Where broadcasting a [C] mask costs ~5x a Mul here. The candidate mask must
    # stay a select (a non-candidate's scores may be NaN); it broadcasts along the classes.
    allowed = class_mask.to(conf.dtype)
    scores = conf[..., 1:] * allowed + (1 - allowed) * _INVALID  # [B, P, C]
    candidate = scores.amax(dim=-1) > conf_threshold  # [B, P]
    scores = torch.where(candidate.unsqueeze(-1), scores, invalid).transpose(1, 2)  # [B, C, P]
    k = min(max_top_k, num_priors)
    top_scores, top_index = _sorted_desc(scores, k, use_topk)  # [B, C, k]
    rank = torch.arange(k, device=loc.device)
    valid = (top_scores > _INVALID) & (rank < top_k)

    boxes = decode_boxes(loc.reshape(-1, 4), priors.unsqueeze(0).expand(batch, -1, -1).reshape(-1, 4))
    offsets = (torch.arange(batch, device=loc.device) * num_priors).view(batch, 1, 1)
    flat_index = top_index + offsets  # [B, C, k] into the B*P rows
    class_boxes = boxes[flat_index.reshape(-1)].view(batch * num_classes, k, 4)
    iou = pairwise_iou(class_boxes).triu(diagonal=1)
    keep = (iou.amax(dim=1).view(batch, num_classes, k) <= iou_threshold) & valid

    kept_scores = torch.where(keep, top_scores, invalid).reshape(batch, num_classes * k)
    m = min(max_detections, num_classes * k)
    final_scores, order = _sorted_desc(kept_scores, m, use_topk)  # [B, M]
    labels = torch.div(order, k, rounding_mode="floor")
    rows = flat_index.reshape(batch, num_classes * k).gather(1, order).reshape(-1)  # [B*M] into B*P
    count = keep.reshape(batch, -1).sum(dim=1).clamp(max=m)
    return PaddedDetections(
        boxes=boxes[rows].view(batch, m, 4),
        coefficients=coefficients.reshape(batch * num_priors, -1)[rows].view(batch, m, -1),
        labels=labels,
        scores=final_scores,
        count=count,
    )
