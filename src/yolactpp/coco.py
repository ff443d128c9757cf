"""COCO result format: mask RLE, category ids and result records, as the original writes them.

One place for these conventions so that ``Detections.to_coco``, the ``yolactpp eval`` command and
any later integration produce identical records:

- ``bbox`` is ``[x, y, w, h]`` from the boxes truncated to integer pixels (the original casts its
  boxes to int64 before writing them), so every value is a whole number.
- ``segmentation`` is the pycocotools RLE of the full-size binary mask (Fortran-order uint8), with
  ``counts`` decoded to an ASCII string so that it serialises to JSON.
- ``category_id`` is the id the detections carry (``Detections.category_ids``: a fine-tuned
  model's dataset ids), else the COCO category id for the 80 COCO classes and ``1..N`` for any
  other class list, unless given explicitly.
- A detection whose integer box is empty is left out, as in the original.

pycocotools is imported on first use only.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np

from yolactpp.classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError

if TYPE_CHECKING:
    from yolactpp.results import Detections

__all__ = [
    "CategoryIds",
    "coco_records",
    "decode_mask_rle",
    "default_category_ids",
    "encode_mask_rle",
    "encode_masks_rle",
    "integer_xywh",
    "resolve_category_ids",
    "to_coco_results",
]

#: Explicit category ids: one per class (a sequence) or a ``{class name: id}`` mapping.
CategoryIds: TypeAlias = Sequence[int] | Mapping[str, int]

RecordKind = Literal["both", "bbox", "segm"]


def encode_masks_rle(masks: np.ndarray) -> list[dict[str, Any]]:
    """Binary masks ``[N, H, W]`` -> N COCO RLE dicts ``{"size": [H, W], "counts": str}``."""
    from pycocotools import mask as mask_util

    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise InvalidArgumentError(f"masks must be [N, H, W], got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    stacked = np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8))
    rles = mask_util.encode(stacked)
    return [{"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")} for rle in rles]


def encode_mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """One binary mask ``[H, W]`` -> a COCO RLE dict ``{"size": [H, W], "counts": str}``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidArgumentError(f"mask must be [H, W], got shape {mask.shape}")
    return encode_masks_rle(mask[None])[0]


def decode_mask_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """A COCO RLE dict (``counts`` as str or bytes) -> bool mask ``[H, W]``."""
    from pycocotools import mask as mask_util

    counts = rle["counts"]
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    return mask_util.decode({"size": list(rle["size"]), "counts": counts}).astype(bool)


def default_category_ids(names: Sequence[str]) -> tuple[int, ...]:
    """COCO category ids for the 80 COCO classes, else ``1..N`` in class order."""
    if tuple(names) == COCO_CLASSES:
        return COCO_CATEGORY_IDS
    return tuple(range(1, len(names) + 1))


def resolve_category_ids(names: Sequence[str], category_ids: CategoryIds | None = None) -> tuple[int | None, ...]:
    """The category id of each class; ``None`` marks a class to leave out.

    ``category_ids`` may be ``None`` (see :func:`default_category_ids`), a sequence with one id per
    class, or a ``{class name: id}`` mapping (classes missing from it are left out; names that are
    not classes raise ``ValueError``).
    """
    if category_ids is None:
        return default_category_ids(names)
    if isinstance(category_ids, Mapping):
        stray = sorted(set(category_ids) - set(names))
        if stray:
            raise InvalidArgumentError(f"category_ids names {stray} are not classes of this model")
        return tuple(None if n not in category_ids else int(category_ids[n]) for n in names)
    ids = tuple(int(i) for i in category_ids)
    if len(ids) != len(names):
        raise InvalidArgumentError(f"category_ids has {len(ids)} entries for {len(names)} classes")
    return ids


def integer_xywh(boxes: np.ndarray) -> np.ndarray:
    """Pixel boxes ``[N, 4]`` (x1, y1, x2, y2) -> integer-truncated ``[N, 4]`` (x, y, w, h), as float."""
    ints = np.trunc(np.asarray(boxes, dtype=np.float64))
    return np.stack([ints[:, 0], ints[:, 1], ints[:, 2] - ints[:, 0], ints[:, 3] - ints[:, 1]], axis=1)


def check_image_id(image_id: object) -> int | str:
    """A COCO ``image_id``: an int (numpy integers become Python ints, so records stay JSON-ready)
    or a non-empty string; anything else raises :class:`InvalidArgumentTypeError`."""
    if isinstance(image_id, str) and image_id:
        return image_id
    if isinstance(image_id, bool):
        raise InvalidArgumentTypeError(f"image_id must be an int or a non-empty string, got {image_id!r}")
    if isinstance(image_id, numbers.Integral):
        return int(image_id)
    raise InvalidArgumentTypeError(f"image_id must be an int or a non-empty string, got {image_id!r}")


def to_coco_results(
    detections: Detections,
    image_id: int | str,
    category_ids: CategoryIds | None = None,
    *,
    kind: RecordKind = "both",
    skip_empty: bool = True,
    polygons: bool = False,
    tolerance: float = 1.0,
) -> list[dict[str, Any]]:
    """COCO result records of one image's detections: :meth:`Detections.to_coco
    <yolactpp.results.Detections.to_coco>` (which hands its arrays to :func:`coco_records`)."""
    return detections.to_coco(
        image_id, category_ids, kind=kind, skip_empty=skip_empty, polygons=polygons, tolerance=tolerance
    )


def coco_records(
    names: Sequence[str],
    labels: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    masks: Callable[[list[int]], np.ndarray],
    image_id: int | str,
    category_ids: CategoryIds | None = None,
    *,
    kind: RecordKind = "both",
    skip_empty: bool = True,
    polygons: bool = False,
    tolerance: float = 1.0,
) -> list[dict[str, Any]]:
    """COCO result records from one image's detections as numpy arrays (see the module notes).

    ``labels`` [N] index ``names``; ``boxes`` [N, 4] are pixel (x1, y1, x2, y2); ``scores`` [N]
    are the scores to write. ``masks(indices)`` returns the binary masks ``[len(indices), H, W]``
    of the detections written (only those are computed; not called for ``kind="bbox"``).
    ``kind="bbox"`` writes box records, ``"segm"`` mask records, ``"both"`` records with both.

    ``polygons=True`` writes ``segmentation`` as COCO polygons (flat ``[x1, y1, x2, y2, ...]``
    lists, see :mod:`yolactpp.polygons`, simplified within ``tolerance`` pixels) instead of RLE; a
    mask too small to outline keeps its RLE.
    """
    if kind not in ("both", "bbox", "segm"):
        raise InvalidArgumentError(f"kind must be 'both', 'bbox' or 'segm', got {kind!r}")
    image_id = check_image_id(image_id)
    cat_of_label = resolve_category_ids(names, category_ids)
    if len(labels) == 0:
        return []
    xywh = integer_xywh(np.asarray(boxes, dtype=np.float64))
    keep = np.array([cat_of_label[label] is not None for label in labels], dtype=bool)
    if skip_empty:
        keep &= (xywh[:, 2] * xywh[:, 3]) > 0
    index = np.flatnonzero(keep)
    if index.size == 0:
        return []
    scores = np.asarray(scores, dtype=np.float64)
    segmentations: list[Any] | None = None
    if kind != "bbox":
        chosen = masks(index.tolist())
        segmentations = list(encode_masks_rle(chosen))
        if polygons:
            from yolactpp.polygons import mask_to_polygons, polygons_to_coco

            for j, mask in enumerate(chosen):
                outlines = polygons_to_coco(mask_to_polygons(mask, tolerance))
                if outlines:
                    segmentations[j] = outlines
    records = []
    for j, i in enumerate(index):
        record: dict[str, Any] = {"image_id": image_id, "category_id": cat_of_label[labels[i]]}
        if kind != "segm":
            record["bbox"] = [float(v) for v in xywh[i]]
        if segmentations is not None:
            record["segmentation"] = segmentations[j]
        record["score"] = float(scores[i])
        records.append(record)
    return records
