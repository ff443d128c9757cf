"""evaluate_coco against a hand-made ground truth whose AP values follow from the COCO rules.

The ground truth is written out here (rectangles, encoded with pycocotools itself) and the
detections are fixed, so nothing on either side comes from the library's own output.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util

from yolactpp.evaluate import evaluate_coco
from yolactpp.results import Detections

HEIGHT, WIDTH = 64, 96
NAMES = ("person", "cat", "dog")
CATEGORY_IDS = {"person": 1, "cat": 17, "dog": 18}  # COCO's ids: not the model's class positions + 1

# Ground truth: one object per class, (x1, y1, x2, y2) in pixels, all "medium" (32^2 < area < 96^2).
GT = {"person": (4, 4, 44, 34), "cat": (50, 4, 90, 34), "dog": (48, 36, 88, 64)}
# Detections: (class, score, box, mask rectangle).
# - person: exact, so a true positive at every IoU threshold: AP 1.
# - cat: a false positive (no overlap, 40 x 26 so also "medium") outscores the exact match:
#   precision 1/2 at recall 1, so AP 0.5; with one detection per image (AR1) the cat is missed.
# - dog: the box is 8 px to the right (IoU 896 / 1344 = 2/3: a match at thresholds 0.5..0.65, 4 of
#   10, so box AP 0.4, AP75 0), the mask is exact (mask AP 1).
DETECTIONS = [
    ("person", 0.9, (4, 4, 44, 34), (4, 4, 44, 34)),
    ("cat", 0.8, (4, 38, 44, 64), (4, 38, 44, 64)),
    ("dog", 0.7, (56, 36, 96, 64), (48, 36, 88, 64)),
    ("cat", 0.6, (50, 4, 90, 34), (50, 4, 90, 34)),
]


def _rectangle(box: tuple[int, int, int, int]) -> np.ndarray:
    x1, y1, x2, y2 = box
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def _ground_truth() -> dict[str, Any]:
    annotations = []
    for i, (name, box) in enumerate(GT.items(), start=1):
        rle = mask_util.encode(np.asfortranarray(_rectangle(box).astype(np.uint8)))
        x1, y1, x2, y2 = box
        annotations.append({
            "id": i, "image_id": 42, "category_id": CATEGORY_IDS[name],
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            "segmentation": {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode()},
        })  # fmt: skip
    image = {"id": 42, "file_name": "scene.png", "height": HEIGHT, "width": WIDTH}
    categories = [{"id": i, "name": name} for name, i in CATEGORY_IDS.items()]
    return {"images": [image], "annotations": annotations, "categories": categories}


class _FixedModel:
    """Stands in for YolactPP: the fixed detections above for every image."""

    class_names = NAMES

    def iter_predict(self, images: Any, batch_size: int = 1, **kwargs: Any) -> Iterator[Detections]:
        for _ in images:
            yield Detections(
                boxes=torch.tensor([d[2] for d in DETECTIONS], dtype=torch.float32),
                scores=torch.tensor([d[1] for d in DETECTIONS]),
                labels=torch.tensor([NAMES.index(d[0]) for d in DETECTIONS]),
                names=NAMES,
                image_size=(HEIGHT, WIDTH),
                soft_masks=torch.zeros(len(DETECTIONS), 1, 1),
                masks=torch.from_numpy(np.stack([_rectangle(d[3]) for d in DETECTIONS])),
            )


def test_ap_of_a_hand_made_case(tmp_path: Path) -> None:
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "scene.png")
    result = evaluate_coco(_FixedModel(), _ground_truth(), tmp_path)  # type: ignore[arg-type]
    assert result.num_images == 1
    box, mask = result.box, result.mask
    assert box["AP"] == pytest.approx((1 + 0.5 + 0.4) / 3)
    assert box["AP50"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert box["AP75"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert box["APm"] == pytest.approx(box["AP"]) and box["APs"] == box["APl"] == -1
    assert box["AR1"] == pytest.approx((1 + 0 + 0.4) / 3)  # the cat's top detection is the false one
    assert box["AR100"] == pytest.approx((1 + 1 + 0.4) / 3)
    assert mask["AP"] == pytest.approx((1 + 0.5 + 1) / 3) and mask["AP75"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert mask["AR1"] == pytest.approx((1 + 0 + 1) / 3)
    assert {r["category_id"] for r in result.results} == {1, 17, 18}
