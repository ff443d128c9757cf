"""Training losses against the original's ``MultiBoxLoss`` (goldens) and the properties they rely on.

The goldens in ``tests/data/loss_goldens`` were computed by dbolya/yolact 902073d on CPU in float64
(procedure in docs/parity.md, "Training losses"); inputs and outputs only, no original code.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from yolactpp.detect.decode import decode_boxes, encode_boxes
from yolactpp.errors import InvalidArgumentError
from yolactpp.heads.maskiou import MaskIoUNet
from yolactpp.network import RawOutput
from yolactpp.registry import list_models
from yolactpp.train.loss import _hard_negatives, compute_losses
from yolactpp.train.loss_config import LossConfig
from yolactpp.train.matching import box_iou, match_priors, prior_corners
from yolactpp.train.targets import ImageTargets

GOLDENS = Path(__file__).resolve().parent.parent / "data" / "loss_goldens"
CASES = sorted(p.stem for p in GOLDENS.glob("*.json"))
_ZOO = {
    "yolact_base_config": "yolact_base",
    "yolact_resnet50_config": "yolact_resnet50",
    "yolact_im700_config": "yolact_im700",
    "yolact_plus_base_config": "yolact_plus_base",
    "yolact_plus_resnet50_config": "yolact_plus_resnet50",
}


@dataclasses.dataclass
class Case:
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    raw: RawOutput
    segmentation: torch.Tensor
    targets: list[ImageTargets]
    maskiou_net: MaskIoUNet | None
    config: LossConfig


def _load(name: str) -> Case:
    meta = json.loads((GOLDENS / f"{name}.json").read_text())
    with np.load(GOLDENS / f"{name}.npz") as data:
        arrays = {k: data[k] for k in data.files}

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(arrays[key]).to(torch.float64).requires_grad_(True)

    raw = RawOutput(
        loc=t("loc"),
        conf_logits=t("conf"),
        coefficients=t("coef"),
        priors=torch.from_numpy(arrays["priors"]),
        proto=t("proto"),
        backbone=(),
        fpn=[],
    )
    targets = []
    for b, crowds in enumerate(meta["num_crowds"]):
        labels = torch.from_numpy(arrays[f"labels_{b}"]).clamp(min=0)  # crowd labels (-1) are ignored
        masks = torch.from_numpy(arrays[f"masks_{b}"]).to(torch.float64)
        targets.append(ImageTargets(torch.from_numpy(arrays[f"boxes_{b}"]), labels, masks, crowds))
    config = LossConfig.for_model(_ZOO[meta["config"]])
    config = dataclasses.replace(config, **meta["overrides"])
    maskiou_net = None
    if config.use_maskiou:
        channels = tuple(c for c, _, _ in meta["maskiou_net"])
        maskiou_net = MaskIoUNet(channels, meta["num_classes_fg"]).to(torch.float64)
        state = {k[len("maskiou.") :]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("maskiou.")}
        maskiou_net.load_state_dict(state)
    return Case(meta, arrays, raw, t("segm"), targets, maskiou_net, config)


def _run(case: Case, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    if generator is None:
        generator = torch.Generator().manual_seed(case.meta["torch_seed"])
    return compute_losses(case.raw, case.segmentation, case.targets, case.maskiou_net, case.config, generator)


@pytest.mark.parametrize("name", CASES)
def test_terms_match_original(name: str) -> None:
    case = _load(name)
    losses = _run(case)
    expected = case.meta["losses"]
    assert set(losses) - {"total"} == set(expected)
    for term, value in expected.items():
        assert losses[term].item() == pytest.approx(value, rel=1e-9, abs=0), term
    assert losses["total"].item() == pytest.approx(sum(expected.values()), rel=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_gradients_match_original(name: str) -> None:
    # The original's gradients of the summed terms: same graph, incl. the undetached mask-IoU path.
    case = _load(name)
    _run(case)["total"].backward()
    grads = {
        "loc": case.raw.loc.grad,
        "conf": case.raw.conf_logits.grad,
        "coef": case.raw.coefficients.grad,
        "proto": case.raw.proto.grad,
        "segm": case.segmentation.grad,
    }
    if case.maskiou_net is not None:
        for key, param in case.maskiou_net.named_parameters():
            grads[f"maskiou.{key}"] = param.grad
    for key, grad in grads.items():
        expected = torch.from_numpy(case.arrays[f"grad_{key}"])
        assert grad is not None, key
        scale = expected.abs().max().item()
        torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12 * scale, msg=key)


def test_cases_exercise_what_they_claim() -> None:
    # Each golden covers the feature it is named for (a case that silently stopped doing so would
    # make its parity check vacuous).
    forced = _load("plus_forced_match")
    match = match_priors(
        forced.targets[0].boxes[:2],
        forced.targets[0].labels[:2],
        forced.targets[0].boxes[2:],
        forced.raw.priors,
        0.5,
        0.4,
        0.7,
    )
    assert int(((match.object_index == 1) & match.positive).sum()) == 1  # only its forced prior

    crowds = _load("v1_crowds")
    target = crowds.targets[2]
    with_crowds = match_priors(target.boxes[:2], target.labels[:2], target.boxes[2:], crowds.raw.priors, 0.5, 0.4, 0.7)
    without = match_priors(target.boxes[:2], target.labels[:2], target.boxes[:0], crowds.raw.priors, 0.5, 0.4, 0.7)
    assert int((with_crowds.labels == -1).sum()) > int((without.labels == -1).sum())

    capped = _load("v1_masks_to_train")
    target = capped.targets[0]
    match = match_priors(target.boxes, target.labels, target.boxes[:0], capped.raw.priors, 0.5, 0.4, 0.7)
    assert int(match.positive.sum()) > capped.config.masks_to_train

    small = _load("plus_maskiou")
    box = small.targets[0].boxes[2]
    assert float((box[2] - box[0]) * (box[3] - box[1])) * 64 * 64 < small.config.discard_mask_area


def test_masks_to_train_sampling_follows_the_generator() -> None:
    case = _load("v1_masks_to_train")
    first = _run(case, torch.Generator().manual_seed(7))["M"].item()
    again = _run(case, torch.Generator().manual_seed(7))["M"].item()
    other = [_run(case, torch.Generator().manual_seed(s))["M"].item() for s in (8, 9)]
    assert first == again
    assert any(value != first for value in other)


def test_maskiou_loss_reaches_coefficients_and_prototypes() -> None:
    case = _load("plus_maskiou")
    losses = _run(case)
    coef_grad, proto_grad = torch.autograd.grad(losses["I"], [case.raw.coefficients, case.raw.proto])
    assert coef_grad.abs().sum() > 0
    assert proto_grad.abs().sum() > 0


def test_crowd_priors_are_neither_positive_nor_negative() -> None:
    priors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.4, 0.4], [0.7, 0.3, 0.2, 0.2]], dtype=torch.float64)
    boxes = torch.tensor([[0.0, 0.0, 0.5, 0.5]], dtype=torch.float64)
    crowd = torch.tensor([[0.5, 0.5, 1.0, 1.0]], dtype=torch.float64)
    match = match_priors(boxes, torch.tensor([2]), crowd, priors, 0.5, 0.4, 0.7)
    assert match.labels.tolist() == [3, -1, 0]  # the crowd never takes a positive, turns prior 1 neutral
    # A positive stays positive under a crowd; crowd_iou_threshold 1 turns the crowd off.
    assert match_priors(boxes, torch.tensor([2]), boxes, priors, 0.5, 0.4, 0.7).labels[0] == 3
    assert match_priors(boxes, torch.tensor([2]), crowd, priors, 0.5, 0.4, 1.0).labels.tolist() == [3, 0, 0]


def test_ohem_keeps_three_negatives_per_positive() -> None:
    generator = torch.Generator().manual_seed(0)
    conf = torch.randn(2, 50, 4, generator=generator, dtype=torch.float64)
    labels = torch.zeros(2, 50, dtype=torch.int64)
    labels[0, :4] = 2
    labels[0, 4:10] = -1  # neutrals are never mined
    labels[1, 7] = 1
    negatives = _hard_negatives(conf, labels, 3)
    assert negatives.sum(dim=1).tolist() == [12, 3]
    assert not negatives[labels != 0].any()
    # They are the highest background losses among the negatives.
    mining = torch.logsumexp(conf, dim=2) - conf[..., 0]
    for b in range(2):
        candidates = mining[b][labels[b] == 0]
        chosen = mining[b][negatives[b]]
        assert chosen.min() >= candidates.sort(descending=True).values[chosen.numel() - 1]


def test_zero_positives_give_zero_terms_with_a_graph() -> None:
    case = _load("v1_base")
    empty = [
        ImageTargets(
            torch.zeros(0, 4, dtype=torch.float64), torch.zeros(0, dtype=torch.int64), torch.zeros(0, 128, 128)
        )
        for _ in case.targets
    ]
    losses = compute_losses(case.raw, case.segmentation, empty, None, case.config)
    assert {k: losses[k].item() for k in "BCM"} == {"B": 0.0, "C": 0.0, "M": 0.0}
    assert torch.isfinite(losses["S"]) and losses["S"] > 0  # every class is background there
    losses["total"].backward()
    assert case.segmentation.grad is not None and torch.isfinite(case.segmentation.grad).all()


def test_maskiou_term_is_zero_when_every_mask_is_discarded() -> None:
    case = _load("plus_maskiou")
    config = dataclasses.replace(case.config, discard_mask_area=1e9)
    losses = compute_losses(case.raw, case.segmentation, case.targets, case.maskiou_net, config)
    assert losses["I"].item() == 0.0


def test_float32_and_bfloat16_inputs() -> None:
    case = _load("plus_maskiou")
    reference = _run(case)
    assert case.maskiou_net is not None
    maskiou32 = case.maskiou_net.float()
    for dtype in (torch.float32, torch.bfloat16):
        raw = dataclasses.replace(
            case.raw,
            loc=case.raw.loc.detach().to(dtype),
            conf_logits=case.raw.conf_logits.detach().to(dtype),
            coefficients=case.raw.coefficients.detach().to(dtype),
            proto=case.raw.proto.detach().to(dtype),
            priors=case.raw.priors.float(),
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            losses = compute_losses(
                raw,
                case.segmentation.detach().to(dtype),
                case.targets,
                maskiou32,
                case.config,
                torch.Generator().manual_seed(0),
            )
        for term in ("B", "C", "S"):
            assert losses[term].dtype == torch.float32
            assert losses[term].item() == pytest.approx(
                reference[term].item(), rel=0.05 if dtype == torch.bfloat16 else 1e-4
            )
        assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("model", list_models("yolact*"))
def test_config_per_zoo_model(model: str) -> None:
    config = LossConfig.for_model(model)
    plus = model.startswith("yolact_plus")
    assert (config.use_maskiou, config.maskiou_alpha, config.discard_mask_area) == (
        (True, 25.0, 25.0) if plus else (False, 1.0, -1.0)
    )
    assert config.masks_to_train == (300 if model == "yolact_im700" else 100)
    assert (config.bbox_alpha, config.mask_alpha, config.conf_alpha, config.semantic_segmentation_alpha) == (
        1.5,
        6.125,
        1.0,
        1.0,
    )
    assert (config.positive_iou_threshold, config.negative_iou_threshold, config.crowd_iou_threshold) == (0.5, 0.4, 0.7)


def test_bad_settings_and_inputs_are_named() -> None:
    with pytest.raises(InvalidArgumentError, match="negative_iou_threshold"):
        LossConfig(negative_iou_threshold=0.6)
    with pytest.raises(InvalidArgumentError, match="masks_to_train"):
        LossConfig(masks_to_train=0)
    case = _load("plus_maskiou")
    with pytest.raises(InvalidArgumentError, match="maskiou_net"):
        compute_losses(case.raw, None, case.targets, None, case.config)
    with pytest.raises(InvalidArgumentError, match="one ImageTargets per image"):
        compute_losses(case.raw, None, case.targets[:1], case.maskiou_net, case.config)
    bad = dataclasses.replace(case.targets[0], labels=case.targets[0].labels + 10)
    with pytest.raises(InvalidArgumentError, match=r"targets\[0\].labels"):
        compute_losses(case.raw, None, [bad, case.targets[1]], case.maskiou_net, case.config)
    small = dataclasses.replace(case.raw, proto=case.raw.proto[:, :32, :32])
    with pytest.raises(InvalidArgumentError, match="too small for the mask re-scoring net"):
        compute_losses(small, None, case.targets, case.maskiou_net, case.config)


def test_encode_inverts_decode() -> None:
    generator = torch.Generator().manual_seed(3)
    priors = torch.cat([torch.rand(20, 2, generator=generator), torch.rand(20, 2, generator=generator) * 0.5 + 0.05], 1)
    deltas = torch.randn(20, 4, generator=generator, dtype=torch.float64)
    priors = priors.to(torch.float64)
    torch.testing.assert_close(encode_boxes(decode_boxes(deltas, priors), priors), deltas, rtol=1e-12, atol=1e-12)


def _naive_forced_matches(overlaps: torch.Tensor) -> dict[int, int]:
    # The original's loop: recompute every object's best prior after each claim.
    overlaps = overlaps.clone()
    forced = {}
    for _ in range(overlaps.shape[0]):
        per_object, per_object_prior = overlaps.max(dim=1)
        j = int(per_object.argmax())
        i = int(per_object_prior[j])
        overlaps[:, i] = -1
        overlaps[j, :] = -1
        forced[i] = j
    return forced


def test_forced_matches_equal_the_original_greedy_loop() -> None:
    # Many crowded objects (claims often take another object's best prior), some duplicated boxes.
    case = _load("v1_base")
    generator = torch.Generator().manual_seed(5)
    corners = torch.rand(40, 2, generator=generator, dtype=torch.float64) * 0.7
    boxes = torch.cat([corners, corners + 0.05 + torch.rand(40, 2, generator=generator, dtype=torch.float64) * 0.3], 1)
    boxes[30:] = boxes[:10]
    labels = torch.arange(40) % 4
    match = match_priors(boxes, labels, boxes[:0], case.raw.priors, 0.5, 0.4, 0.7)
    forced = _naive_forced_matches(box_iou(boxes, prior_corners(case.raw.priors)))
    assert len(forced) == 40
    for prior, obj in forced.items():
        assert int(match.object_index[prior]) == obj
        assert int(match.labels[prior]) == int(labels[obj]) + 1
