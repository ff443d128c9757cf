"""Prior matching: which prior learns which ground-truth object (the original's ``match``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PriorMatch", "box_iou", "crowd_coverage", "match_priors", "prior_corners"]


def prior_corners(priors: torch.Tensor) -> torch.Tensor:
    """Priors ``(cx, cy, w, h)`` ``[P, 4]`` -> ``(x1, y1, x2, y2)`` (both corners from the centre)."""
    return torch.cat([priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2], dim=1)


def _intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # [A, 4] x [B, 4] corner boxes -> [A, B] intersection areas.
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    sides = (high - low).clamp(min=0)
    return sides[..., 0] * sides[..., 1]


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU ``[A, B]`` of corner boxes ``a`` ``[A, 4]`` and ``b`` ``[B, 4]``."""
    inter = _intersection(a, b)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def crowd_coverage(priors: torch.Tensor, crowds: torch.Tensor) -> torch.Tensor:
    """``[P, K]``: the fraction of each prior's area (corner boxes ``[P, 4]``) inside each crowd box."""
    return _intersection(priors, crowds) / _area(priors)[:, None]


@dataclass(frozen=True)
class PriorMatch:
    """Matching result for one image's ``P`` priors.

    ``labels`` [P] int64: ``c + 1`` for a positive of class ``c``, ``0`` background (a negative),
    ``-1`` neutral (ignored by every term). ``object_index`` [P] int64: the ground-truth row each
    prior is matched to (meaningful for positives only).
    """

    labels: torch.Tensor
    object_index: torch.Tensor

    @property
    def positive(self) -> torch.Tensor:
        return self.labels > 0


def match_priors(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    crowd_boxes: torch.Tensor,
    priors: torch.Tensor,
    positive_threshold: float,
    negative_threshold: float,
    crowd_threshold: float,
) -> PriorMatch:
    """Match priors ``(cx, cy, w, h)`` ``[P, 4]`` to objects ``boxes`` ``[n, 4]`` (corners) with
    ``labels`` ``[n]`` (0-based); ``crowd_boxes`` ``[k, 4]`` (``k`` may be 0).

    Each prior takes the object it overlaps most. Then, best overlap first, every object is forced
    onto its best prior not yet taken (overriding thresholds and that prior's own choice), so no
    object goes untrained. A best IoU ``>= positive_threshold`` is positive, ``< negative_threshold``
    background, else neutral; a non-positive prior with crowd coverage ``> crowd_threshold`` becomes
    neutral (``crowd_threshold >= 1`` disables this). An image without objects has only background
    (and crowd-neutral) priors.
    """
    corners = prior_corners(priors)
    num_priors = priors.shape[0]
    if boxes.shape[0] == 0:
        match_labels = torch.zeros(num_priors, dtype=torch.int64, device=priors.device)
        object_index = torch.zeros(num_priors, dtype=torch.int64, device=priors.device)
    else:
        overlaps = box_iou(boxes, corners)  # [n, P]
        best_overlap, object_index = overlaps.max(dim=0)
        # Forced matches: the highest remaining (object, prior) overlap first; each claimed object
        # and prior leaves the pool (its overlaps become -1). Only objects whose best prior was
        # just claimed need a new row maximum, so this costs O(n P) rather than the original's
        # O(n^2 P) with the same choices (max takes the first of equal values either way).
        per_object, per_object_prior = overlaps.max(dim=1)
        for _ in range(boxes.shape[0]):
            j = int(per_object.argmax())  # ints: tensor indices would make these writes copies
            i = int(per_object_prior[j])
            overlaps[:, i] = -1
            overlaps[j, :] = -1
            per_object[j] = -1
            best_overlap[i] = 2
            object_index[i] = j
            stale = per_object_prior == i
            stale[j] = False
            if bool(stale.any()):
                per_object[stale], per_object_prior[stale] = overlaps[stale].max(dim=1)
        match_labels = labels[object_index] + 1
        match_labels[best_overlap < positive_threshold] = -1
        match_labels[best_overlap < negative_threshold] = 0
    if crowd_boxes.shape[0] > 0 and crowd_threshold < 1:
        covered = crowd_coverage(corners, crowd_boxes).amax(dim=1) > crowd_threshold
        match_labels[(match_labels <= 0) & covered] = -1
    return PriorMatch(labels=match_labels, object_index=object_index)
