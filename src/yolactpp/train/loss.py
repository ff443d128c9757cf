"""YOLACT / YOLACT++ training losses, term for term as the original ``MultiBoxLoss``.

Terms (the original's keys): ``B`` box regression, ``C`` confidence with online hard-negative
mining, ``M`` prototype masks, ``S`` semantic segmentation, ``I`` YOLACT++ mask IoU. Differences
from the original (zero positives, images without objects, tie order) are listed in
``docs/parity.md`` ("Training losses").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from yolactpp.detect.decode import encode_boxes
from yolactpp.errors import InvalidArgumentError
from yolactpp.heads.maskiou import MaskIoUNet
from yolactpp.network import RawOutput
from yolactpp.train.loss_config import LossConfig
from yolactpp.train.mask_loss import MaskIoUSamples, binary_downsample, mask_loss
from yolactpp.train.matching import PriorMatch, match_priors
from yolactpp.train.targets import ImageTargets

__all__ = ["LOSS_TERMS", "compute_losses"]

#: Every key :func:`compute_losses` may return, in its order (``total`` is their sum).
LOSS_TERMS = ("B", "C", "M", "S", "I")


def _loss_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half-precision networks get their losses computed in float32.
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _check_inputs(
    raw: RawOutput,
    segmentation_logits: torch.Tensor | None,
    targets: Sequence[ImageTargets],
    maskiou_net: MaskIoUNet | None,
    config: LossConfig,
) -> None:
    if raw.loc.dim() != 3 or raw.loc.shape[2] != 4:
        raise InvalidArgumentError(f"raw.loc must be [B, P, 4], got {list(raw.loc.shape)}")
    batch, num_priors = raw.loc.shape[:2]
    num_classes = raw.conf_logits.shape[-1] - 1
    if raw.conf_logits.shape[:2] != (batch, num_priors) or raw.coefficients.shape[:2] != (batch, num_priors):
        raise InvalidArgumentError(
            f"raw.conf_logits {list(raw.conf_logits.shape)} and raw.coefficients {list(raw.coefficients.shape)} "
            f"must start with [B, P] = {[batch, num_priors]}"
        )
    if raw.priors.shape != (num_priors, 4):
        raise InvalidArgumentError(f"raw.priors must be [P, 4] = {[num_priors, 4]}, got {list(raw.priors.shape)}")
    if raw.proto.dim() != 4 or raw.proto.shape[0] != batch or raw.proto.shape[3] != raw.coefficients.shape[2]:
        raise InvalidArgumentError(
            f"raw.proto must be [B, Hp, Wp, k] with B = {batch}, k = {raw.coefficients.shape[2]}, "
            f"got {list(raw.proto.shape)}"
        )
    if len(targets) != batch:
        raise InvalidArgumentError(
            f"targets: need one ImageTargets per image, got {len(targets)} for a batch of {batch}"
        )
    for i, target in enumerate(targets):
        if not isinstance(target, ImageTargets):
            raise InvalidArgumentError(f"targets[{i}] must be an ImageTargets, got {type(target).__name__}")
        objects = target.boxes.shape[0] - target.num_crowds
        labels = target.labels[:objects]
        if objects and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise InvalidArgumentError(
                f"targets[{i}].labels must be class indices in [0, {num_classes - 1}], "
                f"got {labels.min().item()}..{labels.max().item()}"
            )
        boxes = target.boxes[:objects]
        if objects and not bool(((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()):
            raise InvalidArgumentError(f"targets[{i}].boxes: every non-crowd box needs x2 > x1 and y2 > y1")
    if segmentation_logits is not None and (
        segmentation_logits.dim() != 4 or segmentation_logits.shape[:2] != (batch, num_classes)
    ):
        raise InvalidArgumentError(
            f"segmentation_logits must be [B, C, Hs, Ws] with B = {batch}, C = {num_classes}, "
            f"got {list(segmentation_logits.shape)}"
        )
    if config.use_maskiou:
        if maskiou_net is None:
            raise InvalidArgumentError("config.use_maskiou is set but no maskiou_net was given")
        _check_maskiou_input_size(maskiou_net, raw.proto.shape[1], raw.proto.shape[2])


def _check_maskiou_input_size(maskiou_net: MaskIoUNet, height: int, width: int) -> None:
    # The re-scoring convs have no padding: small prototypes (small inputs) leave nothing to pool.
    h, w = height, width
    for layer in maskiou_net.modules():
        if isinstance(layer, torch.nn.Conv2d):
            (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
            h, w = (h - kh) // sh + 1, (w - kw) // sw + 1
    if h < 1 or w < 1:
        raise InvalidArgumentError(
            f"prototypes of {height}x{width} are too small for the mask re-scoring net (its unpadded "
            "convolutions need about 63x63, i.e. an input of about 250 pixels or more)"
        )


def _box_loss(
    loc: torch.Tensor, priors: torch.Tensor, matches: Sequence[PriorMatch], boxes: Sequence[torch.Tensor]
) -> torch.Tensor:
    predicted, encoded = [], []
    for b, match in enumerate(matches):
        positive = match.positive
        predicted.append(loc[b, positive])
        encoded.append(encode_boxes(boxes[b][match.object_index[positive]], priors[positive]))
    return F.smooth_l1_loss(torch.cat(predicted), torch.cat(encoded), reduction="sum")


def _hard_negatives(conf: torch.Tensor, match_labels: torch.Tensor, ratio: int) -> torch.Tensor:
    """[B, P] bool: per image the ``ratio`` x positives negatives of highest background loss.

    The mining loss is log-sum-exp shifted by the batch-wide maximum logit minus the background
    logit, as in the original; equal losses keep prior order (stable sort) where the original's
    sort is unstable.
    """
    positive = match_labels > 0
    with torch.no_grad():
        flat = conf.reshape(-1, conf.shape[-1])
        peak = flat.max()
        mining = (torch.log(torch.exp(flat - peak).sum(dim=1)) + peak - flat[:, 0]).view(match_labels.shape)
        mining[positive | (match_labels < 0)] = 0
        order = mining.sort(dim=1, descending=True, stable=True).indices
        rank = torch.empty_like(order)
        rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
        num_neg = (ratio * positive.sum(dim=1, keepdim=True)).clamp(max=match_labels.shape[1] - 1)
        return (rank < num_neg) & (match_labels == 0)


def _semantic_loss(logits: torch.Tensor, labels: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> torch.Tensor:
    # Per image and class: the union of that class's GT masks at the logits' size.
    _, num_classes, height, width = logits.shape
    total = logits.new_zeros(())
    for b in range(logits.shape[0]):
        small = binary_downsample(masks[b], height, width)
        target = logits.new_zeros(num_classes, height, width)
        target.index_add_(0, labels[b], small).clamp_(max=1)
        total = total + F.binary_cross_entropy_with_logits(logits[b], target, reduction="sum")
    return total / height / width


def _maskiou_loss(maskiou_net: MaskIoUNet, samples: MaskIoUSamples) -> torch.Tensor:
    predicted = maskiou_net(samples.masks[:, None]).gather(1, samples.labels[:, None]).squeeze(1)
    return F.smooth_l1_loss(predicted, samples.iou.to(predicted.dtype), reduction="sum")


def compute_losses(
    raw: RawOutput,
    segmentation_logits: torch.Tensor | None,
    targets: Sequence[ImageTargets],
    maskiou_net: MaskIoUNet | None,
    config: LossConfig,
    generator: torch.Generator | None = None,
    sum_counts: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The training losses of one batch, as the original ``MultiBoxLoss`` computes them.

    Inputs: ``raw`` from :meth:`YolactNetwork.forward_raw` on a batch of ``B`` images (``loc``
    [B, P, 4], ``conf_logits`` [B, P, C+1] background first, ``coefficients`` [B, P, k] after tanh,
    ``priors`` [P, 4], ``proto`` [B, Hp, Wp, k] after ReLU); ``segmentation_logits`` [B, C, Hs, Ws]
    of the training-only semantic-segmentation head (usually on P3) or ``None`` to leave out ``S``;
    ``targets`` one :class:`ImageTargets` per image (boxes as fractions of the input, masks at the
    input size, crowd rows last); ``maskiou_net`` the YOLACT++ re-scoring net (required when
    ``config.use_maskiou``; it is run on the predicted masks, which keep their graph, so ``I``
    also trains the coefficients and prototypes); ``generator`` a torch generator for the random
    ``masks_to_train`` subset (``None``: torch's global one, like the original).

    Returns scalar tensors ``B``, ``C``, ``M``, ``S`` (when logits are given), ``I`` (when
    ``config.use_maskiou``; 0 when no mask qualifies, where the original leaves the key out) and
    ``total`` (their sum, the value to backpropagate); each already weighted by its alpha. ``B``,
    ``C``, ``M``, ``I`` are divided by the batch's number of positive priors (by 1 when there is
    none, so they are 0 where the original divides by zero), ``S`` by ``B``. Computed in the
    inputs' dtype, in float32 for half-precision inputs, with autocast off.

    ``sum_counts`` (data-parallel training) sums the normalisers ``[positives, images]`` over the
    processes, so each process's terms are its share of the global batch's: their sum over the
    processes equals the loss of one process given the whole batch. ``None``: this batch alone.
    """
    _check_inputs(raw, segmentation_logits, targets, maskiou_net, config)
    dtype = _loss_dtype(raw.loc.dtype)
    device = raw.loc.device
    with torch.autocast(device.type, enabled=False):
        loc, conf = raw.loc.to(dtype), raw.conf_logits.to(dtype)
        coefficients, proto, priors = raw.coefficients.to(dtype), raw.proto.to(dtype), raw.priors.to(dtype)
        boxes, labels, masks, matches = [], [], [], []
        for target in targets:
            objects = target.boxes.shape[0] - target.num_crowds
            all_boxes = target.boxes.to(device, dtype)
            boxes.append(all_boxes[:objects])
            labels.append(target.labels[:objects].to(device))
            masks.append(target.masks[:objects].to(device, dtype))
            matches.append(
                match_priors(
                    boxes[-1],
                    labels[-1],
                    all_boxes[objects:],
                    priors,
                    config.positive_iou_threshold,
                    config.negative_iou_threshold,
                    config.crowd_iou_threshold,
                )
            )
        match_labels = torch.stack([m.labels for m in matches])
        object_index = torch.stack([m.object_index for m in matches])
        positive = match_labels > 0
        counts = torch.stack([positive.sum(), positive.new_tensor(len(targets), dtype=torch.long)])
        if sum_counts is not None:
            counts = sum_counts(counts)
        num_pos, num_images = counts[0].clamp(min=1).to(dtype), counts[1].to(dtype)

        losses: dict[str, torch.Tensor] = {}
        losses["B"] = _box_loss(loc, priors, matches, boxes) * config.bbox_alpha / num_pos

        selected = positive | _hard_negatives(conf, match_labels, config.ohem_negpos_ratio)
        conf_loss = F.cross_entropy(conf[selected], match_labels[selected], reduction="sum")
        losses["C"] = conf_loss * config.conf_alpha / num_pos

        height, width = proto.shape[1:3]
        small_masks = [binary_downsample(m, height, width) for m in masks]
        mask_sum, samples = mask_loss(
            proto,
            coefficients,
            positive,
            object_index,
            boxes,
            labels,
            small_masks,
            config.masks_to_train,
            config.normalize_mask_by_box_area,
            config.discard_mask_area if config.use_maskiou else None,
            generator,
        )
        losses["M"] = mask_sum * config.mask_alpha / height / width / num_pos

        if segmentation_logits is not None:
            semantic = _semantic_loss(segmentation_logits.to(dtype), labels, masks)
            losses["S"] = semantic * config.semantic_segmentation_alpha / num_images
        if config.use_maskiou:
            assert maskiou_net is not None
            iou_loss = _maskiou_loss(maskiou_net, samples) if samples is not None else proto.new_zeros(())
            losses["I"] = iou_loss * config.maskiou_alpha / num_pos
        losses["total"] = torch.stack(list(losses.values())).sum()
    return losses
