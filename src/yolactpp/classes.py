"""COCO 2017 class names and category ids, in the order the released models predict them."""

from __future__ import annotations

import difflib
import operator
from typing import Iterable, Sequence

from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["COCO_CATEGORY_IDS", "COCO_CLASSES", "resolve_class_ids"]

#: The 80 COCO 2017 thing classes; a model's label ``i`` is ``COCO_CLASSES[i]``.
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip

#: COCO annotation ``category_id`` of each label (COCO skips some ids).
COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip


def resolve_class_ids(classes: str | int | Iterable[str | int], names: Sequence[str]) -> list[int]:
    """Class names and/or 0-based ids -> sorted, unique label ids of ``names``.

    Used by ``predict(classes=...)``, ``Detections.filter`` and the CLI so that every entry point
    accepts and rejects the same things. Unknown names or out-of-range ids raise ``ValueError``
    listing the valid names.
    """
    if isinstance(classes, (str, int)):
        classes = [classes]
    index = {name: i for i, name in enumerate(names)}
    ids: set[int] = set()
    unknown: list[str] = []
    for item in classes:
        if isinstance(item, str):
            if item in index:
                ids.add(index[item])
            else:
                unknown.append(repr(item))
            continue
        if isinstance(item, bool):
            raise InvalidArgumentTypeError(f"class must be a name or an integer id, got {item!r}")
        try:
            value = operator.index(item)
        except TypeError:
            raise InvalidArgumentTypeError(
                f"class must be a name or an integer id, got {type(item).__name__}"
            ) from None
        if 0 <= value < len(names):
            ids.add(value)
        else:
            unknown.append(f"id {value}")
    if unknown:
        hints = []
        for item in unknown:
            if item.startswith("'"):
                close = difflib.get_close_matches(item[1:-1], names, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{item} -> did you mean {close[0]!r}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise InvalidArgumentError(
            f"unknown class(es) {', '.join(unknown)}{hint}. Valid classes are ids 0..{len(names) - 1} "
            f"or names: {', '.join(names)}"
        )
    return sorted(ids)
