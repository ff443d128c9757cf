"""Binary masks -> outline polygons, in the form COCO (and labelling tools such as CVAT) read.

Contours come from contourpy (marching squares, the library behind matplotlib's contours) and
are simplified with shapely (Douglas-Peucker); both are small, numpy-only wheels, imported on
first use (the ``polygons`` extra).

Conventions, as for COCO polygons:

- points are ``(x, y)`` in image pixels, pixel ``(col, row)`` covering ``[col, col+1] x [row, row+1]``,
  so a polygon traces the outer edge of the mask's pixels (corners are cut by half a pixel);
- each separate part of a mask gives its own polygon; COCO polygons cannot express holes (its
  tools fill the union of an object's polygons), so holes are filled: only outer outlines are
  returned. Use the RLE masks when holes matter;
- a polygon has at least 3 points and the first point is not repeated at the end;
- a part of a single pixel is too small to outline and gives no polygon (COCO writers keep the
  mask's RLE when no polygon is left).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError, MissingDependencyError

__all__ = ["MIN_PART_AREA", "check_tolerance", "mask_to_polygons", "polygon_area", "polygons_to_coco"]

#: Parts whose traced outline covers less (square pixels) are too small to outline: a lone pixel
#: traces as a 0.5 px diamond; two touching pixels as 1.5. A mask of such parts only keeps its RLE.
MIN_PART_AREA = 1.0


def _import(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(
            f"polygons need {name}: pip install 'yolactpp[polygons]' (or pip install contourpy shapely)"
        ) from None


def check_tolerance(tolerance: object) -> float:
    """A simplification tolerance: a number of pixels >= 0 (named errors for anything else)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real):
        raise InvalidArgumentTypeError(f"tolerance must be a number of pixels, got {tolerance!r}")
    value = float(tolerance)
    if not value >= 0:  # also refuses NaN
        raise InvalidArgumentError(f"tolerance must be >= 0 pixels, got {tolerance}")
    return value


def mask_to_polygons(mask: np.ndarray, tolerance: float = 1.0) -> list[np.ndarray]:
    """The outer outlines of a binary ``[H, W]`` mask: one float ``[K, 2]`` (x, y) array per part.

    ``tolerance`` (pixels) is how far the simplified outline may stray from the traced one;
    ``0`` keeps every traced point. Parts are ordered by their first point (top, then left).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidArgumentError(f"mask must be [H, W], got shape {mask.shape}")
    check_tolerance(tolerance)
    if not mask.any():
        return []
    contourpy = _import("contourpy")
    # Trace only the mask's bounding box (the cost grows with the area traced), plus one pixel of
    # background around it, which also closes the outlines of parts touching the image border.
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    top, left = int(rows[0]), int(cols[0])
    window = mask[top : int(rows[-1]) + 1, left : int(cols[-1]) + 1].astype(bool)
    padded = np.pad(window, 1).astype(np.float32)
    origin = np.array([left - 0.5, top - 0.5])  # padded pixel centres -> image pixel edges
    points, offsets = contourpy.contour_generator(z=padded, name="serial", fill_type="OuterOffset").filled(0.5, 2.0)
    outlines = []
    for part, starts in zip(points, offsets):
        outer = part[starts[0] : starts[1]] + origin
        if polygon_area(outer) < MIN_PART_AREA:
            continue  # a lone pixel: its outline would be a diamond of half a pixel, not its shape
        if tolerance > 0 and len(outer) > 4:
            shapely = _import("shapely")
            simplified = shapely.simplify(shapely.Polygon(outer), tolerance, preserve_topology=True)
            outer = np.asarray(simplified.exterior.coords, dtype=np.float64)
        outer = outer[:-1] if len(outer) > 1 and np.array_equal(outer[0], outer[-1]) else outer
        if len(outer) >= 3:
            outlines.append(np.asarray(outer, dtype=np.float64))
    outlines.sort(key=lambda p: (float(p[:, 1].min()), float(p[:, 0].min())))
    return outlines


def polygon_area(polygon: np.ndarray) -> float:
    """Area of a simple polygon ``[K, 2]`` (shoelace formula), in square pixels."""
    x, y = np.asarray(polygon, dtype=np.float64).T
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def polygons_to_coco(polygons: list[np.ndarray], decimals: int = 2) -> list[list[float]]:
    """``[K, 2]`` polygons -> COCO ``segmentation``: one flat ``[x1, y1, x2, y2, ...]`` list each."""
    return [[round(float(v), decimals) for v in polygon.reshape(-1)] for polygon in polygons]
