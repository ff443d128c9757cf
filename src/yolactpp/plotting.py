"""Drawing detections on an image: blended masks, boxes and "name score" labels.

Every class has a fixed colour (``class_color``), so the same class looks the same across images
and video frames. Detections are painted from the lowest to the highest score, so the best one
ends up on top, and mask blending matches the original's formula (each mask mixes its colour in
with weight ``alpha`` over what is already painted).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from yolactpp.errors import InvalidArgumentError

__all__ = ["PALETTE", "blend_masks", "class_color", "draw_detections"]

#: Twenty well-separated colours (RGB); class ``i`` uses ``PALETTE[i % 20]``.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip


def class_color(label: int) -> tuple[int, int, int]:
    """The colour of class ``label`` (stable across images and runs)."""
    return PALETTE[int(label) % len(PALETTE)]


def _extent(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def blend_masks(
    image: np.ndarray, masks: np.ndarray, colors: Sequence[tuple[int, int, int]], alpha: float = 0.45
) -> np.ndarray:
    """Paint binary masks ``[N, H, W]`` over an RGB uint8 image, first mask first (it ends up below).

    Inside mask ``j`` a pixel becomes ``(1 - alpha) * pixel + alpha * colors[j]``; the result is
    rounded to uint8. Pixels outside every mask are returned unchanged.
    """
    if not 0.0 <= alpha <= 1.0:
        raise InvalidArgumentError(f"alpha must be in [0, 1], got {alpha}")
    out = image.astype(np.float32)
    for mask, color in zip(masks, colors):
        extent = _extent(mask)
        if extent is None:
            continue
        region = out[extent]
        m = mask[extent]
        region[m] = region[m] * (1.0 - alpha) + np.asarray(color, dtype=np.float32) * alpha
    touched = masks.any(axis=0) if len(masks) else np.zeros(image.shape[:2], dtype=bool)
    result = image.copy()
    result[touched] = np.clip(np.rint(out[touched]), 0, 255).astype(np.uint8)
    return result


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def _text_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def draw_detections(
    image: np.ndarray,
    *,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    names: Sequence[str],
    masks: np.ndarray | None = None,
    show_boxes: bool = True,
    show_labels: bool = True,
    show_scores: bool = True,
    alpha: float = 0.45,
    line_width: int | None = None,
    font_size: int | None = None,
    track_ids: np.ndarray | None = None,
) -> Image.Image:
    """Draw detections on an RGB uint8 image ``[H, W, 3]``; returns a new PIL image.

    ``boxes`` are pixel (x1, y1, x2, y2); ``masks`` (optional) bool ``[N, H, W]`` at the image size.
    With ``track_ids`` (``-1``: untracked) a tracked detection is coloured by its track and its
    label starts with ``#<id>``, so one object keeps its colour and number over a video.
    Line width and font size default to values that scale with the image.
    """
    height, width = image.shape[:2]
    order = np.argsort(np.asarray(scores), kind="stable")  # lowest first, so the best is drawn last
    tracks = None if track_ids is None else np.asarray(track_ids)
    colors = [
        class_color(labels[i]) if tracks is None or tracks[i] < 0 else class_color(7 * int(tracks[i]))
        for i in order
    ]
    canvas = image
    if masks is not None and len(order):
        if masks.shape[1:] != (height, width):
            raise InvalidArgumentError(f"masks are {masks.shape[1:]} but the image is {(height, width)}")
        canvas = blend_masks(image, masks[order], colors, alpha)
    pil = Image.fromarray(np.ascontiguousarray(canvas))
    if not (show_boxes or show_labels) or not len(order):
        return pil
    draw = ImageDraw.Draw(pil)
    short = min(height, width)
    lw = line_width if line_width is not None else max(1, round(short / 300))
    font = _font(font_size if font_size is not None else max(10, round(short / 40)))
    for i, color in zip(order, colors):
        x1, y1, x2, y2 = (float(v) for v in boxes[i])
        if show_boxes:
            draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=color, width=lw)
        if show_labels:
            text = names[int(labels[i])] + (f" {float(scores[i]):.2f}" if show_scores else "")
            if tracks is not None and tracks[i] >= 0:
                text = f"#{int(tracks[i])} {text}"
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            tw, th = right - left, bottom - top + 2 * lw
            ty = y1 - th if y1 - th >= 0 else y1  # above the box when there is room, else inside it
            tx = min(x1, max(0.0, width - tw - 2 * lw))
            draw.rectangle((tx, ty, tx + tw + 2 * lw, ty + th), fill=color)
            draw.text((tx + lw - left, ty + lw - top), text, fill=_text_color(color), font=font)
    return pil
