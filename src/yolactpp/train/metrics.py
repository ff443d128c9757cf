"""The run's metrics: a JSON-lines log and a PNG of its curves (drawn with Pillow, no plotting library).

Each line of ``metrics.jsonl`` is one record: training lines hold ``iteration`` (1-based: the
number of optimizer steps done), ``lr``, ``time`` (seconds since the run started, summed over
resumed sessions), ``loss`` (the total) and one entry per loss term (``B``, ``C``, ``M``, ``S``,
``I``); validation lines hold ``"kind": "val"``, ``iteration`` and ``box_AP``, ``box_AP50``,
``mask_AP``, ``mask_AP50``, ...
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from yolactpp.plotting import class_color

__all__ = ["MetricsLog", "plot_curves"]


class MetricsLog:
    """Append-only JSON-lines file of training and validation records."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        """Write one record (flushed at once, so a killed run keeps its log)."""
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(dict(record)) + "\n")

    def read(self) -> list[dict[str, Any]]:
        """Every record, in order (an empty list when there is no log yet)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_after(self, iteration: int) -> None:
        """Drop records past ``iteration``: a resumed run repeats the iterations after its checkpoint."""
        records = [r for r in self.read() if int(r["iteration"]) <= iteration]
        text = "".join(json.dumps(r) + "\n" for r in records)
        self.path.write_text(text, encoding="utf-8")


_SIZE = (900, 380)
_MARGIN = (56, 16, 16, 34)  # left, top, right, bottom


def _panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    series: Sequence[tuple[str, list[tuple[float, float]]]],
    title: str,
    log_scale: bool,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
) -> None:
    x0, y0, x1, y1 = box
    left, top, right, bottom = x0 + _MARGIN[0], y0 + _MARGIN[1] + 12, x1 - _MARGIN[2], y1 - _MARGIN[3]
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((left, y0 + 4), title, fill=(0, 0, 0), font=font)
    points = [p for _, pts in series for p in pts if not log_scale or p[1] > 0]
    if not points:
        draw.text((left + 8, top + 8), "no data yet", fill=(90, 90, 90), font=font)
        return

    def ty(v: float) -> float:
        return math.log10(v) if log_scale else v

    xs = [p[0] for p in points]
    ys = [ty(p[1]) for p in points]
    xmin, xmax = min(xs), max(xs)
    ymin, ymax = min(ys), max(ys)
    if not log_scale:
        ymin = min(ymin, 0.0)
    xmax = xmax if xmax > xmin else xmin + 1
    ymax = ymax if ymax > ymin else ymin + 1

    def at(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - xmin) / (xmax - xmin) * (right - left),
            bottom - (ty(y) - ymin) / (ymax - ymin) * (bottom - top),
        )

    for frac in (0.0, 0.5, 1.0):
        value = ymin + frac * (ymax - ymin)
        label = f"{10**value:.3g}" if log_scale else f"{value:.3g}"
        y = bottom - frac * (bottom - top)
        draw.text((x0 + 4, y - 6), label, fill=(60, 60, 60), font=font)
    draw.text((left, bottom + 4), f"{xmin:g}", fill=(60, 60, 60), font=font)
    draw.text((right - 40, bottom + 4), f"{xmax:g} it", fill=(60, 60, 60), font=font)
    legend_x = left + 8
    for index, (name, pts) in enumerate(series):
        color = class_color(index)
        usable = [p for p in pts if not log_scale or p[1] > 0]
        if len(usable) >= 2:
            draw.line([at(*p) for p in usable], fill=color, width=2)
        for p in usable if len(usable) < 2 else usable[-1:]:
            cx, cy = at(*p)
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=color)
        draw.text((legend_x, top + 4), name, fill=color, font=font)
        legend_x += 8 * len(name) + 16


def _smooth(points: list[tuple[float, float]], window: int) -> list[tuple[float, float]]:
    """Running mean over ``window`` points (the raw per-iteration losses are noisy)."""
    if window <= 1:
        return points
    out, total = [], 0.0
    for i, (x, y) in enumerate(points):
        total += y
        if i >= window:
            total -= points[i - window][1]
        out.append((x, total / min(i + 1, window)))
    return out


def plot_curves(records: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Draw the loss terms (log scale, smoothed) and the validation AP of ``records`` into a PNG."""
    records = list(records)
    train = [r for r in records if r.get("kind", "train") == "train"]
    val = [r for r in records if r.get("kind") == "val"]
    terms = [k for k in ("loss", "B", "C", "M", "S", "I") if any(k in r for r in train)]
    window = max(1, len(train) // 50)
    loss_series = [
        (k, _smooth([(float(r["iteration"]), float(r[k])) for r in train if k in r], window)) for k in terms
    ]
    ap_series = [
        (k, [(float(r["iteration"]), float(r[k])) for r in val if k in r and r[k] >= 0])
        for k in ("box_AP", "box_AP50", "mask_AP", "mask_AP50")
    ]
    image = Image.new("RGB", _SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    half = _SIZE[0] // 2
    _panel(draw, (0, 0, half, _SIZE[1]), loss_series, "training loss (log scale)", True, font)
    _panel(draw, (half, 0, _SIZE[0], _SIZE[1]), ap_series, "validation AP", False, font)
    out = Path(path)
    image.save(out)
    return out
