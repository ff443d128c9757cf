"""Comparison of a prediction with an oracle golden (tolerances of tests/data/oracle/ORACLE.md §4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from tests.oracle.checkpoints import DATA

IMAGES = ("square_550x550", "landscape_1280x720")


@cache
def golden(config: str, image: str, seed: int = 0) -> dict[str, Any]:
    return json.loads((DATA / "goldens" / config / f"{image}.seed{seed}.json").read_text())


def image_path(image: str) -> Path:
    return DATA / "images" / f"{image}.png"


def golden_masks(g: dict[str, Any]) -> np.ndarray:
    h, w = g["image_size"]["height"], g["image_size"]["width"]
    rles = g["detections"]["masks"]
    if not rles:
        return np.zeros((0, h, w), dtype=bool)
    return np.stack([mask_util.decode(r) for r in rles]).astype(bool)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else float(np.array_equal(a, b))


def kept_fraction(reference: Any, candidate: Any, min_score: float = 0.05) -> tuple[int, int]:
    """Greedy one-to-one matching (same class, box IoU >= 0.9) of the reference detections with
    score >= ``min_score``, in reference order; returns (matched, eligible). Takes any two
    ``Detections`` (torch or numpy, any device: compared through ``.numpy()``)."""
    ref, cand = reference.numpy(masks=False), candidate.numpy(masks=False)
    ref_boxes, cand_boxes = ref.boxes.astype(np.float64), cand.boxes.astype(np.float64)
    used = np.zeros(len(cand), dtype=bool)
    eligible = matched = 0
    for i in range(len(ref)):
        if ref.scores[i] < min_score:
            continue
        eligible += 1
        for j in np.flatnonzero(~used & (cand.labels == ref.labels[i])):
            if box_iou(cand_boxes[j], ref_boxes[i]) >= 0.9:
                used[j] = True
                matched += 1
                break
    return matched, eligible


def mask_ious(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair IoU of two stacks of boolean masks, and the count of differing pixels."""
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return iou, union - inter


@dataclass
class Float64Report:
    count: int
    max_score_rel: float
    max_box_abs: float
    min_mask_iou: float
    differing_pixels: int


def check_float64(det: Any, g: dict[str, Any]) -> Float64Report:
    """Exact-mode comparison; raises AssertionError naming the first violated rule."""
    gd = g["detections"]
    n = g["num_detections"]
    assert len(det) == n, f"detection count {len(det)} != golden {n}"
    labels = det.labels.cpu().numpy()
    scores = det.scores.cpu().double().numpy()
    boxes = det.boxes.cpu().double().numpy()
    g_scores = np.asarray(gd["scores"], dtype=np.float64)
    assert np.array_equal(labels, np.asarray(gd["classes"], dtype=np.int64)), "classes (or their order) differ"
    score_err = np.abs(scores - g_scores)
    assert np.all(score_err <= 1e-9 * np.abs(g_scores) + 1e-12), f"score deviation {score_err.max():.3e}"
    box_err = np.abs(boxes - np.asarray(gd["boxes"], dtype=np.float64)) if n else np.zeros(1)
    assert box_err.max() <= 1e-6, f"box deviation {box_err.max():.3e} px"
    if n:
        assert np.array_equal(np.trunc(boxes).astype(np.int64), np.asarray(gd["boxes_int"])), "integer boxes differ"
    masks = det.masks.cpu().numpy()
    ref = golden_masks(g)
    assert masks.shape == ref.shape, f"mask stack {masks.shape} != golden {ref.shape}"
    iou, diff = mask_ious(masks, ref) if n else (np.ones(1), np.zeros(1, dtype=np.int64))
    union_total = int((masks | ref).sum())
    assert iou.min() >= 0.999, f"mask IoU {iou.min():.6f} < 0.999"
    assert diff.sum() <= max(10, 1e-4 * union_total), f"{int(diff.sum())} differing mask pixels"
    return Float64Report(n, float((score_err / np.maximum(np.abs(g_scores), 1e-300)).max(initial=0.0)),
                         float(box_err.max()), float(iou.min()), int(diff.sum()))


@dataclass
class Float32Report:
    eligible: int
    matched: int
    mean_mask_iou: float
    min_mask_iou: float
    max_score_abs: float
    min_box_iou: float


def check_float32(det: Any, g: dict[str, Any]) -> Float32Report:
    """Loose-mode comparison: greedy one-to-one matching in golden order."""
    gd = g["detections"]
    labels = det.labels.cpu().numpy()
    scores = det.scores.cpu().double().numpy()
    boxes = det.boxes.cpu().double().numpy()
    masks = det.masks.cpu().numpy()
    ref = golden_masks(g)
    used = np.zeros(len(det), dtype=bool)
    pairs: list[tuple[int, int, float, float]] = []
    for gi, (cls, score, box) in enumerate(zip(gd["classes"], gd["scores"], gd["boxes"])):
        best, best_iou = -1, 0.0
        for pi in np.flatnonzero(~used & (labels == cls)):
            if abs(scores[pi] - score) > 1e-3:
                continue
            iou = box_iou(boxes[pi], np.asarray(box))
            if iou >= 0.99 and iou > best_iou:
                best, best_iou = int(pi), iou
        if best >= 0:
            used[best] = True
            pairs.append((gi, best, best_iou, abs(scores[best] - score)))
    eligible = [i for i, s in enumerate(gd["scores"]) if s >= 0.05]
    matched = {gi for gi, *_ in pairs}
    hit = sum(1 for i in eligible if i in matched)
    assert hit >= 0.98 * len(eligible), f"matched {hit} of {len(eligible)} golden detections with score >= 0.05"
    if pairs:
        iou, _ = mask_ious(masks[[p for _, p, *_ in pairs]], ref[[gi for gi, *_ in pairs]])
    else:
        iou = np.ones(1)
    assert iou.mean() >= 0.99, f"mean mask IoU {iou.mean():.4f} < 0.99"
    assert iou.min() >= 0.5, f"a matched mask has IoU {iou.min():.4f} < 0.5"
    return Float32Report(len(eligible), hit, float(iou.mean()), float(iou.min()),
                         max((p[3] for p in pairs), default=0.0), min((p[2] for p in pairs), default=1.0))


def check_fingerprint(name: str, tensor: Any, fp: dict[str, Any], rel: float = 1e-9) -> None:
    """A stage tensor against its golden fingerprint (shape, sums, sampled values)."""
    arr = tensor.detach().cpu().double().numpy()
    assert list(arr.shape) == fp["shape"], f"stage {name}: shape {list(arr.shape)} != golden {fp['shape']}"
    flat = arr.reshape(-1)
    values = flat[np.asarray(fp["indices"], dtype=np.int64)]
    golden_values = np.asarray(fp["values"], dtype=np.float64)
    scale = max(1.0, float(np.abs(golden_values).max(initial=0.0)))
    err = np.abs(values - golden_values).max(initial=0.0)
    assert err <= rel * scale, f"stage {name}: sampled values deviate by {err:.3e}"
    for key, value in (("sum", flat.sum()), ("abs_sum", np.abs(flat).sum())):
        ref = fp[key]
        tol = rel * max(abs(ref), float(np.abs(flat).sum()), 1.0)
        assert abs(value - ref) <= tol, f"stage {name}: {key} {value!r} != golden {ref!r}"
