"""The result row: one per input image, flat and typed so that every block, every parquet file and
every JSON line has the same columns.

==================  =================================  ===================================================
column              type                               meaning
==================  =================================  ===================================================
``image_id``        string                             the input's ``image_id`` column, else its path, else
                                                       ``sha1:<16 hex>`` of the image bytes / pixels
``path``            string or null                     the file the image came from
``height``          int64 or null                      image height in pixels (null when it could not be read)
``width``           int64 or null                      image width in pixels
``num_detections``  int64 or null                      N (null on an error row)
``boxes``           list<list<double>> or null         N boxes ``[x1, y1, x2, y2]`` in image pixels
``scores``          list<double> or null               N final scores (YOLACT++: detection score x mask IoU)
``box_scores``      list<double> or null               N detection scores before mask re-scoring
``labels``          list<int64> or null                N 0-based class indices
``class_names``     list<string> or null               N class names
``masks``           list<struct<size, counts>> or null N COCO RLE masks at the image size:
                                                       ``{"size": [height, width], "counts": str}``
``error``           string or null                     why this image has no result (null when it has one)
==================  =================================  ===================================================

Detections are in :class:`~yolactpp.Detections` order; the values are exactly what
``YolactPP.predict`` returns for the same image and options. ``masks`` are the RLE of
:func:`yolactpp.coco.encode_masks_rle` (decode one with :func:`yolactpp.coco.decode_mask_rle`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from yolactpp.results import Detections

__all__ = ["RESULT_SCHEMA", "detection_row", "error_row", "rows_to_table"]

_RLE = pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())])

#: The arrow schema of every result batch (see the module docs for the columns).
RESULT_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("height", pa.int64()),
        ("width", pa.int64()),
        ("num_detections", pa.int64()),
        ("boxes", pa.list_(pa.list_(pa.float64()))),
        ("scores", pa.list_(pa.float64())),
        ("box_scores", pa.list_(pa.float64())),
        ("labels", pa.list_(pa.int64())),
        ("class_names", pa.list_(pa.string())),
        ("masks", pa.list_(_RLE)),
        ("error", pa.string()),
    ]
)


def detection_row(detections: Detections, image_id: str, path: str | None) -> dict[str, Any]:
    """One image's detections as a result row (masks RLE-encoded at the image size)."""
    from yolactpp.coco import encode_masks_rle

    arrays = detections.numpy(masks=True)
    height, width = arrays.image_size
    masks = cast(np.ndarray, arrays.masks)
    return {
        "image_id": image_id,
        "path": path,
        "height": height,
        "width": width,
        "num_detections": len(arrays),
        "boxes": arrays.boxes.astype(float).tolist(),
        "scores": arrays.scores.astype(float).tolist(),
        "box_scores": arrays.box_scores.astype(float).tolist(),
        "labels": arrays.labels.astype(int).tolist(),
        "class_names": arrays.class_names,
        "masks": encode_masks_rle(masks),
        "error": None,
    }


def error_row(image_id: str, path: str | None, error: str, size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The row of an image without a result: ``error`` says why; ``size`` is (height, width) if known."""
    row: dict[str, Any] = {name: None for name in RESULT_SCHEMA.names}
    row.update(image_id=image_id, path=path, error=error)
    if size is not None:
        row["height"], row["width"] = size
    return row


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Result rows -> an arrow table with exactly :data:`RESULT_SCHEMA` (also when empty)."""
    return pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)
