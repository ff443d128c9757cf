"""End-to-end latency of ``predict`` on this machine: warm-up, N timed runs, median/p90.

A timed run is what a user waits for: preprocessing, the network, detection, mask assembly and
(by default) the full-resolution masks, with the device synchronised before the clock stops.
Works for the eager :class:`~yolactpp.YolactPP` and for exported files
(:class:`~yolactpp.export.ExportedModel`: ONNX on onnxruntime, pt2 on AOTInductor, int8), so
runtimes can be compared in one run on one image.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from yolactpp.errors import InvalidArgumentError

if TYPE_CHECKING:
    from yolactpp.export import ExportedModel
    from yolactpp.model import YolactPP

__all__ = ["BenchmarkResult", "benchmark_predict", "format_table", "synthetic_image"]


@dataclass(frozen=True)
class BenchmarkResult:
    """Timings of one benchmark configuration; ``times`` are seconds per ``predict`` call.

    ``runtime`` is what ran the network: ``"torch"`` (eager), ``"onnxruntime"`` or ``"aoti"``.
    """

    model: str
    device: str
    dtype: str
    batch_size: int
    image_size: tuple[int, int]
    warmup: int
    times: tuple[float, ...]
    runtime: str = "torch"

    @property
    def median(self) -> float:
        """Median seconds per call (one batch)."""
        return statistics.median(self.times)

    @property
    def p90(self) -> float:
        """90th percentile of seconds per call (linear interpolation)."""
        return float(np.percentile(self.times, 90))

    @property
    def images_per_second(self) -> float:
        """Throughput at the median latency."""
        return self.batch_size / self.median

    def row(self) -> dict[str, Any]:
        """A flat dict for tables and JSON (times in milliseconds)."""
        data = asdict(self)
        data.pop("times")
        h, w = self.image_size
        data["image_size"] = f"{w}x{h}"
        data.update(
            reps=len(self.times),
            median_ms=round(1000 * self.median, 2),
            p90_ms=round(1000 * self.p90, 2),
            images_per_s=round(self.images_per_second, 2),
        )
        return data


def synthetic_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB uint8 image (stand-in input when no image is given)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 64), max(2, width // 64), 3)).astype(np.float32)
    rows = np.linspace(0, coarse.shape[0] - 1, height)
    cols = np.linspace(0, coarse.shape[1] - 1, width)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, coarse.shape[0] - 1), np.minimum(c0 + 1, coarse.shape[1] - 1)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c1] * fc
    bottom = coarse[r1][:, c0] * (1 - fc) + coarse[r1][:, c1] * fc
    return np.clip(top * (1 - fr) + bottom * fr, 0, 255).astype(np.uint8)


def _synchronize(device: Any) -> None:
    if getattr(device, "type", None) == "cuda":  # a torch device; exported models return synced numpy
        import torch

        torch.cuda.synchronize(device)


def benchmark_predict(
    model: YolactPP | ExportedModel,
    image: Any = None,
    *,
    image_size: tuple[int, int] = (720, 1280),
    batch_size: int = 1,
    warmup: int = 2,
    reps: int = 10,
    include_masks: bool = True,
    **predict_kwargs: Any,
) -> BenchmarkResult:
    """Time ``model.predict`` on a batch of ``batch_size`` copies of ``image``.

    ``image`` is anything ``predict`` accepts (default: :func:`synthetic_image` of ``image_size``,
    (height, width)). ``include_masks`` also builds the full-resolution masks in each run.
    """
    from yolactpp.preprocess import to_rgb_array

    if batch_size < 1 or reps < 1 or warmup < 0:
        raise InvalidArgumentError(f"need batch_size >= 1, reps >= 1, warmup >= 0; got {batch_size}, {reps}, {warmup}")
    array = to_rgb_array(image) if image is not None else synthetic_image(*image_size)
    batch = [array] * batch_size
    device = model.device

    def run() -> float:
        start = time.perf_counter()
        results = model.predict(batch, **predict_kwargs)
        if include_masks:
            for result in results:
                result.masks  # noqa: B018 - builds the cached full-size masks
        _synchronize(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        run()
    times = tuple(run() for _ in range(reps))
    return BenchmarkResult(
        model=model.config.name,
        device=str(device),
        dtype=str(model.dtype).removeprefix("torch."),
        batch_size=batch_size,
        image_size=(int(array.shape[0]), int(array.shape[1])),
        warmup=warmup,
        times=times,
        runtime=getattr(model, "runtime", "torch"),
    )


def format_table(results: Sequence[BenchmarkResult]) -> str:
    """Results as a fixed-width text table, one row each; with several rows, a last column gives
    each row's speed-up over the first (its median latency divided by theirs)."""
    columns = ("model", "runtime", "device", "dtype", "batch_size", "image_size", "reps", "median_ms", "p90_ms", "images_per_s")
    headers = ["model", "runtime", "device", "dtype", "batch", "image", "reps", "median ms", "p90 ms", "img/s"]
    rows = [[str(r.row()[c]) for c in columns] for r in results]
    if len(results) > 1:
        headers.append("x vs row 1")
        for row, r in zip(rows, results):
            row.append(f"{results[0].median / r.median:.2f}")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = {"batch", "reps", "median ms", "p90 ms", "img/s", "x vs row 1"}

    def fmt(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if h in numeric else c.ljust(w) for c, w, h in zip(cells, widths, headers)
        ).rstrip()

    return "\n".join([fmt(headers)] + [fmt(row) for row in rows])
