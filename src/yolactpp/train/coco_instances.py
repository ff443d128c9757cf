"""Reading and validating a COCO-format instance-segmentation dataset (an ``instances_*.json`` file
and an image folder), eagerly, in the calling process.

Every record is checked when the dataset is opened, so a bad file fails before training starts,
with one :class:`~yolactpp.errors.DatasetError` listing every problem, each naming the JSON file
and the image / annotation id. With ``skip_bad=True`` the bad images and annotations are left
out instead and counted per reason (:attr:`CocoInstances.skipped`).

What is kept follows the original loader (dbolya/yolact ``data/coco.py``):

- Classes are the categories sorted by id, made contiguous (``class_names[i]`` has COCO id
  ``category_ids[i]``), so a trained model can write the dataset's own ids back.
- ``iscrowd`` annotations become crowd regions: label ``-1``, placed after the image's other
  objects (the loss treats anchors they cover as neither positive nor negative).
- Images without any annotation are left out of training (the original indexes only images that
  have annotations, unless the file has none at all); ``include_unannotated=True`` keeps them.
- Boxes come from each annotation's ``bbox`` (not recomputed from the mask); masks are decoded
  from polygons, uncompressed or compressed RLE with pycocotools.

Deliberate differences: the original's ``COCO_<split>_`` file-name prefix stripping (specific to
its download script) is not done; boxes reaching up to one pixel past the image border are clipped
instead of refused; anything the original would crash on or silently mis-read is a named problem.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolactpp.errors import DatasetError, DatasetWarning, MissingFileError

__all__ = ["REASONS", "CocoImage", "CocoInstances", "CocoObject", "read_coco_instances"]

#: Why an image or annotation is refused (the keys of :attr:`CocoInstances.skipped`).
REASONS: Mapping[str, str] = {
    "malformed_image": "malformed image record",
    "duplicate_image_id": "duplicate image id",
    "missing_image": "missing image file",
    "unreadable_image": "unreadable image",
    "image_size_mismatch": "image size differs from the JSON",
    "malformed_annotation": "malformed annotation record",
    "duplicate_annotation_id": "duplicate annotation id",
    "unknown_image": "annotation of an unknown image",
    "unknown_category": "unknown category",
    "malformed_box": "malformed box",
    "box_outside_image": "box outside the image",
    "zero_area_box": "zero-area box",
    "malformed_segmentation": "malformed segmentation",
    "zero_area_mask": "zero-area mask",
}

#: How far (in pixels) a box may reach past the image border and still be accepted (then clipped).
BOX_TOLERANCE = 1.0

#: How many problems a :class:`DatasetError` message lists (all are in ``problems``).
_LISTED = 10


@dataclass(frozen=True)
class CocoObject:
    """One annotation, validated: ``box`` (x1, y1, x2, y2) in image pixels, ``label`` the contiguous
    class index (``-1`` for a crowd region), ``rle`` its mask as a compressed pycocotools RLE."""

    annotation_id: Any
    label: int
    box: tuple[float, float, float, float]
    rle: dict[str, Any]

    @property
    def is_crowd(self) -> bool:
        return self.label < 0


@dataclass(frozen=True)
class CocoImage:
    """One image of the dataset: its COCO id, file, size from the JSON, and objects (crowds last)."""

    image_id: Any
    file_name: str
    path: Path
    width: int
    height: int
    objects: tuple[CocoObject, ...]

    @property
    def num_crowds(self) -> int:
        return sum(obj.is_crowd for obj in self.objects)


@dataclass(frozen=True)
class CocoInstances:
    """A validated COCO instance dataset.

    ``images`` are the usable images in file order; ``class_names`` / ``category_ids`` the classes
    (categories sorted by id); ``skipped`` counts what ``skip_bad`` left out, per reason (keys of
    :data:`REASONS`); ``unannotated_images`` how many images were left out for having no
    annotation (as the original does).
    """

    annotation_file: Path
    image_dir: Path
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    images: tuple[CocoImage, ...]
    skipped: Mapping[str, int]
    unannotated_images: int


class _Problems:
    """Collects the problems of one file; raises them all at once unless they are to be skipped."""

    def __init__(self, source: Path, skip: bool) -> None:
        self.source = source
        self.skip = skip
        self.lines: list[str] = []
        self.counts: Counter[str] = Counter()

    def add(self, reason: str, where: str, detail: str) -> None:
        self.counts[reason] += 1
        self.lines.append(f"{where}: {REASONS[reason]}: {detail}")

    def finish(self) -> None:
        if not self.lines:
            return
        if not self.skip:
            listed = "\n  ".join(self.lines[:_LISTED])
            more = f"\n  ... and {len(self.lines) - _LISTED} more" if len(self.lines) > _LISTED else ""
            raise DatasetError(
                f"{self.source}: {len(self.lines)} problem(s) in the dataset:\n  {listed}{more}\n"
                "Fix them, or leave the bad images and annotations out with skip_bad=True (--skip-bad).",
                tuple(self.lines),
            )
        summary = ", ".join(f"{n} x {REASONS[reason]}" for reason, n in sorted(self.counts.items()))
        warnings.warn(f"{self.source}: skipped {summary} (skip_bad=True)", DatasetWarning, stacklevel=3)


def _fatal(source: Path, message: str) -> DatasetError:
    return DatasetError(f"{source}: {message}")


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _categories(source: Path, records: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    if not isinstance(records, list) or not records:
        raise _fatal(source, "'categories' must be a non-empty list of {'id': int, 'name': str}")
    seen: dict[int, str] = {}
    for i, cat in enumerate(records):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or isinstance(cat["id"], bool):
            raise _fatal(source, f"categories[{i}]: needs an integer 'id', got {cat!r}"[:300])
        if not isinstance(cat.get("name"), str) or not cat["name"]:
            raise _fatal(source, f"category {cat['id']}: needs a non-empty string 'name'")
        if cat["id"] in seen:
            raise _fatal(source, f"duplicate category id {cat['id']} ({seen[cat['id']]!r} and {cat['name']!r})")
        seen[cat["id"]] = cat["name"]
    names = list(seen.values())
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _fatal(source, f"category names must be unique, repeated: {', '.join(duplicates)}")
    ids = tuple(sorted(seen))
    return tuple(seen[i] for i in ids), ids


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) as the image decodes upright (EXIF orientation applied), read from the header."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _check_image_file(record: dict[str, Any], where: str, image_dir: Path, problems: _Problems) -> Path | None:
    from PIL import Image

    path = image_dir / record["file_name"]
    if not path.is_file():
        problems.add("missing_image", where, f"{path} does not exist")
        return None
    try:
        size = _image_size(path)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        problems.add("unreadable_image", where, f"cannot read {path}: {exc}")
        return None
    if size != (record["width"], record["height"]):
        problems.add(
            "image_size_mismatch",
            where,
            f"{path} is {size[0]} x {size[1]} pixels, the JSON says {record['width']} x {record['height']}",
        )
        return None
    return path


def _images(
    source: Path, records: Any, image_dir: Path, check_files: bool, problems: _Problems
) -> dict[Any, tuple[dict[str, Any], Path]]:
    if not isinstance(records, list):
        raise _fatal(source, "'images' must be a list")
    images: dict[Any, tuple[dict[str, Any], Path]] = {}
    seen: set[Any] = set()
    for i, rec in enumerate(records):
        image_id = rec.get("id") if isinstance(rec, dict) else None
        where = f"image {image_id!r}" if _is_id(image_id) else f"images[{i}]"
        if not isinstance(rec, dict) or not _is_id(image_id):
            problems.add("malformed_image", where, "needs an integer or string 'id'")
            continue
        if image_id in seen:
            problems.add("duplicate_image_id", where, "the id is used by an earlier image")
            images.pop(image_id, None)
            continue
        seen.add(image_id)
        name, width, height = rec.get("file_name"), rec.get("width"), rec.get("height")
        if not isinstance(name, str) or not name:
            problems.add("malformed_image", where, "needs a 'file_name' string")
            continue
        where = f"image {image_id!r} ({name})"
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            problems.add(
                "malformed_image", where, f"'width' and 'height' must be positive integers, got {width!r}, {height!r}"
            )
            continue
        path = _check_image_file(rec, where, image_dir, problems) if check_files else image_dir / name
        if path is not None:
            images[image_id] = (rec, path)
    return images


def _rle_counts(counts: str) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string (pycocotools' format), or None if malformed."""
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        value, shift, more = 0, 0, True
        while more:
            if p >= n:
                return None
            c = ord(counts[p]) - 48
            if not 0 <= c < 64:
                return None
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            p += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            return None
        runs.append(value)
    return runs


def _segmentation_rle(seg: Any, height: int, width: int) -> tuple[dict[str, Any] | None, str]:
    """A COCO ``segmentation`` -> (compressed RLE, "") or (None, what is wrong with it)."""
    from pycocotools import mask as mask_util

    if isinstance(seg, list):
        if not seg:
            return None, "empty polygon list"
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2 or not all(_is_number(v) for v in poly):
                return None, "each polygon must be a list of at least 3 (x, y) pairs of finite numbers"
        return mask_util.merge(mask_util.frPyObjects(seg, height, width)), ""
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, list) or len(size) != 2 or [height, width] != size:
            return None, f"RLE 'size' must be [height, width] = [{height}, {width}], got {size!r}"
        if isinstance(counts, list):
            runs = counts
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in runs):
                return None, "uncompressed RLE 'counts' must be non-negative integers"
            rle = mask_util.frPyObjects({"size": size, "counts": runs}, height, width)
        elif isinstance(counts, (str, bytes)):
            text = counts.decode("ascii", "replace") if isinstance(counts, bytes) else counts
            decoded = _rle_counts(text)
            if decoded is None:
                return None, "compressed RLE 'counts' is not a valid RLE string"
            runs = decoded
            rle = {"size": size, "counts": text.encode("ascii")}
        else:
            return None, "RLE 'counts' must be a list of run lengths or a compressed string"
        if sum(runs) != height * width:
            return None, f"RLE runs cover {sum(runs)} pixels, the image has {height * width}"
        return rle, ""
    return None, f"expected a polygon list or an RLE dict, got {type(seg).__name__}"


def _annotation(
    ann: dict[str, Any], image: dict[str, Any], label_of: Mapping[int, int], where: str, problems: _Problems
) -> CocoObject | None:
    from pycocotools import mask as mask_util

    width, height = image["width"], image["height"]
    category = ann.get("category_id")
    if not isinstance(category, int) or isinstance(category, bool) or category not in label_of:
        problems.add("unknown_category", where, f"category_id {category!r} is not among the categories")
        return None
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or isinstance(crowd, float):
        problems.add("malformed_annotation", where, f"'iscrowd' must be 0 or 1, got {crowd!r}")
        return None
    bbox = ann.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        problems.add("malformed_box", where, f"'bbox' must be [x, y, width, height] of finite numbers, got {bbox!r}")
        return None
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        problems.add("zero_area_box", where, f"bbox {bbox} has no area")
        return None
    tol = BOX_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        problems.add(
            "box_outside_image", where, f"bbox {bbox} (x, y, w, h) reaches outside the {width} x {height} image"
        )
        return None
    box = (max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height)))
    if "segmentation" not in ann:
        problems.add("malformed_segmentation", where, "no 'segmentation' (instance masks are needed for training)")
        return None
    rle, why = _segmentation_rle(ann["segmentation"], height, width)
    if rle is None:
        problems.add("malformed_segmentation", where, why)
        return None
    if int(mask_util.area(rle)) == 0:
        problems.add("zero_area_mask", where, "the segmentation covers no pixel")
        return None
    return CocoObject(ann["id"], -1 if crowd else label_of[category], box, rle)


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise MissingFileError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _fatal(path, f"not a valid JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise _fatal(path, "expected a JSON object with 'images', 'annotations' and 'categories'")
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise _fatal(path, f"not a COCO instances file: missing {', '.join(repr(k) for k in missing)}")
    return data


def read_coco_instances(
    annotations: str | os.PathLike[str],
    images: str | os.PathLike[str],
    *,
    skip_bad: bool = False,
    include_unannotated: bool = False,
    check_image_files: bool = True,
) -> CocoInstances:
    """Read and validate a COCO instances JSON file and its image folder.

    ``images`` is the folder the records' ``file_name`` values are relative to. Each image file is
    opened (header only) to check it exists, is an image, and has the size the JSON gives
    (``check_image_files=False`` skips this, for very large datasets whose files are known good).
    Raises :class:`~yolactpp.errors.DatasetError` listing every problem, or with ``skip_bad`` leaves
    the bad records out, counts them per reason and warns once (:class:`~yolactpp.errors.DatasetWarning`).
    Structural faults (not JSON, no categories, duplicate category ids) always raise.
    """
    source = Path(annotations)
    image_dir = Path(images)
    data = _load_json(source)
    if not image_dir.is_dir():
        raise MissingFileError(f"image folder not found: {image_dir}")
    problems = _Problems(source, skip_bad)
    class_names, category_ids = _categories(source, data["categories"])
    label_of = {cat: i for i, cat in enumerate(category_ids)}
    image_records = _images(source, data["images"], image_dir, check_image_files, problems)

    anns = data["annotations"]
    if not isinstance(anns, list):
        raise _fatal(source, "'annotations' must be a list")
    listed = {r["id"] for r in data["images"] if isinstance(r, dict) and _is_id(r.get("id"))}
    objects: dict[Any, list[CocoObject]] = {}
    annotated: set[Any] = set()
    seen: set[Any] = set()
    for i, ann in enumerate(anns):
        ann_id = ann.get("id") if isinstance(ann, dict) else None
        where = f"annotation {ann_id!r}" if _is_id(ann_id) else f"annotations[{i}]"
        if not isinstance(ann, dict) or not _is_id(ann_id):
            problems.add("malformed_annotation", where, "needs an integer or string 'id'")
            continue
        if ann_id in seen:
            problems.add("duplicate_annotation_id", where, "the id is used by an earlier annotation")
            continue
        seen.add(ann_id)
        image_id = ann.get("image_id")
        if not _is_id(image_id):
            problems.add("malformed_annotation", where, f"'image_id' must be an integer or string, got {image_id!r}")
            continue
        annotated.add(image_id)
        if image_id not in image_records:
            if image_id not in listed:  # the annotations of an image refused above go with it, uncounted
                problems.add("unknown_image", where, f"image_id {image_id!r} is not among the images")
            continue
        record, _ = image_records[image_id]
        where = f"annotation {ann_id!r} (image {image_id!r}, {record['file_name']})"
        obj = _annotation(ann, record, label_of, where, problems)
        if obj is not None:
            objects.setdefault(image_id, []).append(obj)
    problems.finish()

    keep_all = include_unannotated or not anns
    kept: list[CocoImage] = []
    for image_id, (record, path) in image_records.items():
        objs = objects.get(image_id, [])
        if not objs and not (keep_all and image_id not in annotated):
            continue
        ordered = tuple(o for o in objs if not o.is_crowd) + tuple(o for o in objs if o.is_crowd)
        kept.append(CocoImage(image_id, record["file_name"], path, record["width"], record["height"], ordered))
    if not kept:
        raise _fatal(source, "no usable image: every image lacks usable annotations")
    return CocoInstances(
        annotation_file=source,
        image_dir=image_dir,
        class_names=class_names,
        category_ids=category_ids,
        images=tuple(kept),
        skipped=dict(problems.counts),
        unannotated_images=sum(1 for image_id in image_records if image_id not in annotated and not keep_all),
    )


def decode_masks(objects: Sequence[CocoObject], height: int, width: int) -> np.ndarray:
    """The objects' masks as a uint8 {0, 1} array [n, height, width]."""
    from pycocotools import mask as mask_util

    if not objects:
        return np.zeros((0, height, width), dtype=np.uint8)
    stacked = mask_util.decode([obj.rle for obj in objects])  # [H, W, n], Fortran order
    return np.ascontiguousarray(stacked.transpose(2, 0, 1))
