"""A synthetic instance-segmentation dataset: circles, rectangles and triangles on noisy backgrounds,
written as COCO instances JSON and PNG images.

It is what the learning test and the training walk-through train on: objects are large (30-60 %
of the image side), one colour each over a textured background, and can overlap, so a small model
learns them in a few hundred iterations yet has to segment real occlusions. The three classes have
the non-contiguous COCO category ids 3, 7 and 9, so a round trip through a trained model proves the
id mapping. Unoccluded objects are written as polygons, occluded ones (and a share of the others)
as compressed RLE of their visible part; ``crowd_fraction`` adds crowd regions (``iscrowd`` 1,
uncompressed RLE, as COCO writes them) made of clusters of small blobs.

Library: :func:`make_shapes_dataset`, :func:`make_shapes_splits`. Command line:
``python -m yolactpp.train.shapes OUT --images 200 --val-images 50`` writes ``OUT/train`` and ``OUT/val``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from yolactpp.errors import InvalidArgumentError

__all__ = ["SHAPE_CATEGORY_IDS", "SHAPE_CLASSES", "ShapesDataset", "main", "make_shapes_dataset", "make_shapes_splits"]

SHAPE_CLASSES = ("circle", "rectangle", "triangle")
#: Non-contiguous on purpose: a model trained on the shapes must write these ids back.
SHAPE_CATEGORY_IDS = (3, 7, 9)

#: An earlier object must keep this share of its area visible when a later one is placed over it.
_MIN_VISIBLE = 0.6
_PLACEMENT_TRIES = 30
_CIRCLE_VERTICES = 40


@dataclass(frozen=True)
class ShapesDataset:
    """Where a generated split lies: ``annotations`` (the COCO JSON) and ``images`` (its PNG folder)."""

    annotations: Path
    images: Path
    num_images: int
    num_objects: int
    num_crowds: int


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random base colour with low-frequency blotches and pixel noise, uint8 H x W x 3."""
    base = rng.uniform(40, 215, size=3)
    coarse = rng.normal(0.0, 30.0, size=(5, 5, 3))
    blotches = np.stack(
        [
            np.asarray(
                Image.fromarray(coarse[..., c].astype(np.float32), mode="F").resize(
                    (width, height), Image.Resampling.BILINEAR
                )
            )
            for c in range(3)
        ],
        axis=-1,
    )
    noise = rng.normal(0.0, 12.0, size=(height, width, 3))
    return np.clip(base + blotches + noise, 0, 255).astype(np.uint8)


def _polygon(kind: str, cx: float, cy: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Vertices [k, 2] of a shape of half-extent ``radius`` centred at (cx, cy)."""
    if kind == "circle":
        angles = np.linspace(0.0, 2 * math.pi, _CIRCLE_VERTICES, endpoint=False)
        offsets = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius
    elif kind == "rectangle":
        aspect = rng.uniform(0.55, 1.0)
        half = np.array([1.0, aspect]) * radius / math.sqrt(1 + aspect**2)  # half-diagonal = radius
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half
        theta = rng.uniform(-math.pi / 6, math.pi / 6) + (math.pi / 2 if rng.integers(2) else 0.0)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        offsets = corners @ rot.T
    else:
        theta = rng.uniform(0, 2 * math.pi)
        angles = theta + np.arange(3) * 2 * math.pi / 3 + rng.uniform(-0.2, 0.2, size=3)
        offsets = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius
    return np.round(offsets + np.array([cx, cy]), 2)


def _rasterise(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_util

    rle = mask_util.frPyObjects([polygon.reshape(-1).tolist()], height, width)
    return mask_util.decode(mask_util.merge(rle)).astype(bool)


def _colour(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A saturated colour at least 90 (Euclidean, 0..255) from ``avoid``."""
    for _ in range(50):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - avoid) > 90:
            return colour
    return 255.0 - avoid


def _rle(mask: np.ndarray, compressed: bool) -> dict[str, Any]:
    from pycocotools import mask as mask_util

    if compressed:
        encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        return {"size": [int(s) for s in encoded["size"]], "counts": encoded["counts"].decode("ascii")}
    flat = mask.astype(np.uint8).reshape(-1, order="F")  # COCO's uncompressed RLE: column-major runs, zeros first
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": runs}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def _one_image(
    rng: np.random.Generator, height: int, width: int, objects: tuple[int, int], crowd: bool, rle_fraction: float
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """An image and its annotations (without ids): objects, then an optional crowd region."""
    image = _background(rng, height, width)
    base = image.reshape(-1, 3).mean(axis=0)
    side = min(height, width)
    placed: list[tuple[int, np.ndarray, np.ndarray]] = []  # (class, polygon, full mask)
    visible: list[np.ndarray] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        for _ in range(_PLACEMENT_TRIES):
            kind = int(rng.integers(len(SHAPE_CLASSES)))
            radius = rng.uniform(0.15, 0.3) * side
            cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            polygon = _polygon(SHAPE_CLASSES[kind], cx, cy, radius, rng)
            full = _rasterise(polygon, height, width)
            if not full.any():
                continue
            after = [v & ~full for v in visible]
            if all(a.sum() >= _MIN_VISIBLE * p[2].sum() for a, p in zip(after, placed)):
                placed.append((kind, polygon, full))
                visible = [*after, full.copy()]
                break
    crowd_mask = np.zeros((height, width), dtype=bool)
    crowd_kind = int(rng.integers(len(SHAPE_CLASSES)))
    if crowd:
        for _ in range(int(rng.integers(4, 7))):
            r = rng.uniform(0.03, 0.05) * side
            blob = _polygon(SHAPE_CLASSES[crowd_kind], rng.uniform(r, width - r), rng.uniform(r, height - r), r, rng)
            crowd_mask |= _rasterise(blob, height, width)
        colour = _colour(rng, base)
        image[crowd_mask] = np.clip(colour + rng.normal(0, 6, size=(int(crowd_mask.sum()), 3)), 0, 255).astype(np.uint8)
    for _, _, full in placed:
        colour = _colour(rng, base)
        image[full] = np.clip(colour + rng.normal(0, 6, size=(int(full.sum()), 3)), 0, 255).astype(np.uint8)
    annotations = []
    for (kind, polygon, full), vis in zip(placed, visible):
        if vis.sum() == full.sum() and rng.uniform() >= rle_fraction:
            segmentation: Any = [polygon.reshape(-1).tolist()]
        else:
            segmentation = _rle(vis, compressed=True)
        annotations.append(
            {
                "category_id": SHAPE_CATEGORY_IDS[kind],
                "segmentation": segmentation,
                "area": float(vis.sum()),
                "bbox": _bbox(vis),
                "iscrowd": 0,
            }
        )
    if crowd:
        crowd_visible = crowd_mask & ~np.any([p[2] for p in placed], axis=0) if placed else crowd_mask
        if crowd_visible.any():
            annotations.append(
                {
                    "category_id": SHAPE_CATEGORY_IDS[crowd_kind],
                    "segmentation": _rle(crowd_visible, compressed=False),
                    "area": float(crowd_visible.sum()),
                    "bbox": _bbox(crowd_visible),
                    "iscrowd": 1,
                }
            )
    return image, annotations


def _size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """(width, height) from one side or a (width, height) pair."""
    sizes = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(sizes) != 2 or not all(isinstance(s, int) and s >= 32 for s in sizes):
        raise InvalidArgumentError(f"image_size must be an int or (width, height), each >= 32, got {image_size!r}")
    return int(sizes[0]), int(sizes[1])


def make_shapes_dataset(
    folder: str | os.PathLike[str],
    num_images: int,
    seed: int = 0,
    image_size: int | Sequence[int] = 160,
    *,
    objects: tuple[int, int] = (1, 3),
    crowd_fraction: float = 0.0,
    rle_fraction: float = 0.25,
) -> ShapesDataset:
    """Write ``num_images`` generated images to ``folder/images`` and their COCO JSON to
    ``folder/annotations.json``; the same ``seed`` writes the same files.

    ``image_size`` is one side or (width, height); each image has ``objects`` (min, max) shapes;
    ``crowd_fraction`` of the images get a crowd region; ``rle_fraction`` of the unoccluded objects
    are written as RLE instead of a polygon. Refuses to write into a folder that already holds a
    dataset (an ``annotations.json`` or a non-empty ``images`` folder).
    """
    if not isinstance(num_images, int) or num_images < 1:
        raise InvalidArgumentError(f"num_images must be a positive integer, got {num_images!r}")
    if not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(f"seed must be an integer >= 0, got {seed!r}")
    if not (isinstance(objects, tuple) and len(objects) == 2 and 1 <= objects[0] <= objects[1]):
        raise InvalidArgumentError(f"objects must be (min, max) with 1 <= min <= max, got {objects!r}")
    width, height = _size(image_size)
    root = Path(folder)
    annotation_file, image_dir = root / "annotations.json", root / "images"
    if annotation_file.exists() or (image_dir.is_dir() and any(image_dir.iterdir())):
        raise InvalidArgumentError(f"{root} already holds a dataset; choose a new folder (nothing is overwritten)")
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x5BA9E5])
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        crowd = bool(rng.uniform() < crowd_fraction)
        pixels, anns = _one_image(rng, height, width, objects, crowd, rle_fraction)
        name = f"{index:06d}.png"
        Image.fromarray(pixels).save(image_dir / name, compress_level=1)
        image_id = index + 1
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    categories = [
        {"id": cid, "name": name, "supercategory": "shape"} for cid, name in zip(SHAPE_CATEGORY_IDS, SHAPE_CLASSES)
    ]
    payload = {
        "info": {"description": f"yolactpp synthetic shapes, seed {seed}"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    with open(annotation_file, "x", encoding="utf-8") as f:
        json.dump(payload, f)
    crowds = sum(a["iscrowd"] for a in annotations)
    return ShapesDataset(annotation_file, image_dir, num_images, len(annotations) - crowds, crowds)


def make_shapes_splits(
    folder: str | os.PathLike[str],
    train_images: int,
    val_images: int,
    seed: int = 0,
    image_size: int | Sequence[int] = 160,
    **options: Any,
) -> tuple[ShapesDataset, ShapesDataset]:
    """``folder/train`` and ``folder/val`` from different seeds (``2 * seed`` and ``2 * seed + 1``),
    with the options of :func:`make_shapes_dataset`."""
    root = Path(folder)
    train = make_shapes_dataset(root / "train", train_images, 2 * seed, image_size, **options)
    val = make_shapes_dataset(root / "val", val_images, 2 * seed + 1, image_size, **options)
    return train, val


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m yolactpp.train.shapes OUT --images N [--val-images M]``: write the shapes dataset."""
    parser = argparse.ArgumentParser(prog="python -m yolactpp.train.shapes", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (OUT/train and OUT/val are created)")
    parser.add_argument("--images", type=int, default=200, help="training images (default 200)")
    parser.add_argument("--val-images", type=int, default=50, help="validation images (default 50; 0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=160, help="image side in pixels (default 160)")
    parser.add_argument("--crowd-fraction", type=float, default=0.0, help="share of images with a crowd region")
    args = parser.parse_args(argv)
    try:
        options = {"crowd_fraction": args.crowd_fraction}
        splits = [make_shapes_dataset(args.out / "train", args.images, 2 * args.seed, args.size, **options)]
        if args.val_images > 0:
            splits.append(
                make_shapes_dataset(args.out / "val", args.val_images, 2 * args.seed + 1, args.size, **options)
            )
    except InvalidArgumentError as exc:
        parser.exit(2, f"error: {exc}\n")
    for split in splits:
        print(
            f"{split.annotations} ({split.num_images} images, {split.num_objects} objects, {split.num_crowds} crowds)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
