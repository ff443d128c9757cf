"""The mask term (M) and the YOLACT++ mask-IoU samples, per image, as the original computes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from yolactpp.postprocess import crop_masks

__all__ = ["MaskIoUSamples", "binary_downsample", "mask_loss"]


def binary_downsample(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Ground-truth masks ``[n, H, W]`` -> ``[n, height, width]`` {0, 1}: bilinear
    (``align_corners=False``, in the masks' dtype) then strictly ``> 0.5``."""
    if masks.shape[0] == 0:
        return masks.new_zeros(0, height, width)
    small = F.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    return (small > 0.5).to(masks.dtype)


@dataclass(frozen=True)
class MaskIoUSamples:
    """What the mask-IoU loss trains on: the cropped soft predicted ``masks`` ``[N, Hp, Wp]`` (with
    their graph), the ``iou`` ``[N]`` of each binarised mask with its ground truth, the ``labels``
    ``[N]`` (0-based class) whose re-scoring output learns it."""

    masks: torch.Tensor
    iou: torch.Tensor
    labels: torch.Tensor


def _binary_iou(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # As the original: float32 pixel counts (exact below 2**24) and a float32 ratio, whatever the
    # loss dtype. An empty union (only possible without the area discard) counts as IoU 0 where
    # the original divides 0 by 0.
    binary = (predicted.detach() > 0.5).float()
    target = target.float()
    inter = (binary * target).sum(dim=(1, 2))
    union = binary.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))


def mask_loss(
    proto: torch.Tensor,
    coefficients: torch.Tensor,
    positive: torch.Tensor,
    object_index: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    labels: Sequence[torch.Tensor],
    small_masks: Sequence[torch.Tensor],
    masks_to_train: int,
    normalize_by_box_area: bool,
    maskiou_discard_area: float | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, MaskIoUSamples | None]:
    """Sum over images of the cropped mask BCE, before ``mask_alpha`` and the normalisations.

    ``proto`` [B, Hp, Wp, k], ``coefficients`` [B, P, k], ``positive`` / ``object_index`` [B, P]
    (the matching); per image the non-crowd ``boxes`` [n, 4], ``labels`` [n] and GT masks already
    binarised at prototype size ``small_masks`` [n, Hp, Wp].

    Per image: masks of the positives (at most ``masks_to_train``, a random subset drawn with
    ``torch.randperm(generator=...)`` beyond that, the sum then scaled by drawn/kept) are
    ``sigmoid(proto @ coef)``, cropped to the matched GT box (1 prototype pixel of padding); per-pixel
    BCE summed per mask, divided by the GT box area in prototype pixels and multiplied by Hp*Wp
    when ``normalize_by_box_area``. ``maskiou_discard_area`` (``None``: no mask-IoU loss) also
    collects the mask-IoU samples: the same cropped soft masks, kept where the GT covers more
    than that many prototype pixels (``<= 0`` keeps all); ``None`` is returned if none is kept.
    """
    height, width = proto.shape[1:3]
    total = proto.new_zeros(())
    iou_masks: list[torch.Tensor] = []
    iou_values: list[torch.Tensor] = []
    iou_labels: list[torch.Tensor] = []
    for b in range(proto.shape[0]):
        priors = positive[b].nonzero().squeeze(1)
        drawn = priors.shape[0]
        if drawn == 0:
            continue
        if drawn > masks_to_train:
            device = generator.device if generator is not None else torch.device("cpu")
            keep = torch.randperm(drawn, generator=generator, device=device)[:masks_to_train]
            priors = priors[keep.to(priors.device)]
        objects = object_index[b, priors]
        gt_boxes = boxes[b][objects]
        target = small_masks[b][objects]
        predicted = torch.sigmoid(proto[b] @ coefficients[b, priors].t()).permute(2, 0, 1)
        predicted = crop_masks(predicted, gt_boxes)
        per_mask = F.binary_cross_entropy(predicted.clamp(0, 1), target, reduction="none").sum(dim=(1, 2))
        if normalize_by_box_area:
            box_w = (gt_boxes[:, 2] - gt_boxes[:, 0]) * width
            box_h = (gt_boxes[:, 3] - gt_boxes[:, 1]) * height
            per_mask = per_mask / box_w / box_h * (height * width)
        if drawn > priors.shape[0]:
            per_mask = per_mask * (drawn / priors.shape[0])
        total = total + per_mask.sum()

        if maskiou_discard_area is None:
            continue
        if maskiou_discard_area > 0:
            big = target.sum(dim=(1, 2)) > maskiou_discard_area
            predicted, target, objects = predicted[big], target[big], objects[big]
        if objects.shape[0] == 0:
            continue
        iou_masks.append(predicted)
        iou_values.append(_binary_iou(predicted, target))
        iou_labels.append(labels[b][objects])
    if not iou_masks:
        return total, None
    return total, MaskIoUSamples(torch.cat(iou_masks), torch.cat(iou_values), torch.cat(iou_labels))
