"""Exported models against the eager model: export time, file size, load time, latency, deviation.

For each model: the eager float32 model (``from_pretrained`` + first predict = its load time), the
eager bfloat16 model, the ONNX file on onnxruntime (CPU) and, with ``--pt2``, the AOTInductor
package; all on the same image with 2 threads, latency = median of ``--reps`` ``predict()`` calls
from image to full-size masks. Deviation = the largest box (px) and score difference to the eager
float32 model over all detections, after checking count, order and classes are equal
("same" column). ``--check-only`` skips timing and just exports + compares (e.g. all six models).

    python benchmarks/bench_export.py --models yolact_plus_resnet50 yolact_base --pt2
    python benchmarks/bench_export.py --models all --check-only
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO, checkpoint_for, markdown_table

IMAGES = (
    REPO / "tests/data/oracle/images/landscape_1280x720.png",
    REPO / "tests/data/oracle/images/square_550x550.png",
)
ALL = ("yolact_resnet50", "yolact_darknet53", "yolact_base", "yolact_im700", "yolact_plus_resnet50", "yolact_plus_base")


def median_latency(predict: Callable[[], Any], reps: int) -> float:
    predict()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        det = predict()
        det.masks  # noqa: B018 - full-size masks are part of the work
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def deviation(eager: Any, other: Any) -> tuple[bool, float, float]:
    """(same count/order/classes, max box diff px, max score diff)."""
    import numpy as np

    e, o = eager.numpy(masks=False), other.numpy(masks=False)
    if len(e) != len(o):
        return False, float("nan"), float("nan")
    if len(e) == 0:
        return True, float("nan"), float("nan")
    order = _tie_tolerant_order(e, o)
    if order is None:
        return False, float("nan"), float("nan")
    return True, float(np.abs(e.boxes - o.boxes[order]).max()), float(np.abs(e.scores - o.scores[order]).max())


TIE = 1e-5  # float32 noise between runtimes (~1e-6) can swap detections whose scores are this close


def _tie_tolerant_order(e: Any, o: Any) -> Any:
    """Indices into ``o`` matching ``e`` one to one, or None. Positions may differ only between
    detections whose eager scores lie within ``TIE`` of each other (a near-tie reordered by
    rounding); the same class and a box within 0.05 px are required."""
    import numpy as np

    order = np.arange(len(e))
    for i in np.flatnonzero(e.labels != o.labels):
        candidates = [
            j
            for j in range(len(o))
            if o.labels[j] == e.labels[i]
            and abs(float(e.scores[i]) - float(e.scores[j])) < TIE
            and np.abs(e.boxes[i] - o.boxes[j]).max() < 0.05
        ]
        if not candidates:
            return None
        order[i] = candidates[0]
    return order if len(set(order.tolist())) == len(order) else None


def extra_image() -> Any:
    from yolactpp.benchmark import synthetic_image

    return synthetic_image(480, 640, seed=7)


def run_model(name: str, out_dir: Path, args: argparse.Namespace) -> list[list[str]]:
    import torch

    from yolactpp import YolactPP
    from yolactpp.export import load_exported
    from yolactpp.preprocess import load_image, to_rgb_array

    torch.set_num_threads(2)
    checkpoint = checkpoint_for(name)
    images = [to_rgb_array(load_image(p)) for p in IMAGES] + [extra_image()]
    start = time.perf_counter()
    eager = YolactPP.from_pretrained(checkpoint)
    references = [eager.predict(img) for img in images]
    eager_load = time.perf_counter() - start
    rows: list[list[str]] = []
    fp32_ms = args.eager_ms[args.models.index(name)] if args.skip_eager and args.eager_ms else None
    if not args.check_only and not args.skip_eager:
        fp32_ms = 1000 * median_latency(lambda: eager.predict(images[0]), args.reps)
        rows.append(
            [name, "eager float32", "-", "-", f"{eager_load:.1f}", f"{fp32_ms:.0f}", "1.00", "reference", "-", "-"]
        )
        bf16 = YolactPP.from_pretrained(checkpoint, dtype=torch.bfloat16)
        ms = 1000 * median_latency(lambda: bf16.predict(images[0]), args.reps)
        same, box, score = deviation(references[0], bf16.predict(images[0]))
        rows.append(
            [
                name,
                "eager bfloat16",
                "-",
                "-",
                "-",
                f"{ms:.0f}",
                f"{ms / fp32_ms:.2f}",
                str(same),
                f"{box:.3g}",
                f"{score:.2g}",
            ]
        )
        del bf16
    formats = [] if args.skip_onnx else [("onnx", "onnxruntime CPU", {})]
    formats += [("pt2", "AOTInductor pt2", {})] if args.pt2 else []
    if args.fp16:
        formats.append(("onnx", "onnx float16 (export only)", {"dtype": "float16"}))
    for fmt, label, options in formats:
        path = out_dir / f"{name}{'_fp16' if options else ''}.{fmt}"
        start = time.perf_counter()
        eager.export(path, format=fmt, **options)
        export_s = time.perf_counter() - start
        size = path.stat().st_size / 2**20
        if options:
            rows.append([name, label, f"{export_s:.0f}", f"{size:.0f}", "-", "-", "-", "-", "-", "-"])
            continue
        start = time.perf_counter()
        model = load_exported(path, threads=2)
        first = model.predict(images[0])
        load_s = time.perf_counter() - start
        checks = [deviation(ref, model.predict(img)) for ref, img in zip(references, images)]
        same = all(c[0] for c in checks)
        box = max(c[1] for c in checks)
        score = max(c[2] for c in checks)
        del first
        if args.check_only:
            rows.append(
                [
                    name,
                    label,
                    f"{export_s:.0f}",
                    f"{size:.0f}",
                    f"{load_s:.1f}",
                    "-",
                    "-",
                    str(same),
                    f"{box:.3g}",
                    f"{score:.2g}",
                ]
            )
            continue
        ms = 1000 * median_latency(lambda: model.predict(images[0]), args.reps)
        assert fp32_ms is not None
        rows.append(
            [
                name,
                label,
                f"{export_s:.0f}",
                f"{size:.0f}",
                f"{load_s:.1f}",
                f"{ms:.0f}",
                f"{ms / fp32_ms:.2f}",
                str(same),
                f"{box:.3g}",
                f"{score:.2g}",
            ]
        )
    for row in rows:
        print(" | ".join(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["yolact_plus_resnet50", "yolact_base"], help="model names or 'all'"
    )
    parser.add_argument(
        "--pt2", action="store_true", help="also compile and time AOTInductor packages (minutes per model)"
    )
    parser.add_argument("--skip-eager", action="store_true", help="no eager rows; ratios use --eager-ms")
    parser.add_argument(
        "--eager-ms", type=float, nargs="*", default=[], help="eager float32 ms per model (with --skip-eager)"
    )
    parser.add_argument("--skip-onnx", action="store_true", help="no float32 ONNX row (e.g. a pt2-only run)")
    parser.add_argument(
        "--fp16", action="store_true", help="also export float16 ONNX files (size and export time only on CPU)"
    )
    parser.add_argument("--check-only", action="store_true", help="export and compare only, no timing")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", default=None, help="folder for the exported files (default: a temporary one)")
    args = parser.parse_args()
    names = ALL if args.models == ["all"] else args.models
    out_dir = Path(args.out or tempfile.mkdtemp(prefix="yolactpp-export-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[list[str]] = []
    for name in names:
        rows += run_model(name, out_dir, args)
    header = [
        "model",
        "runtime",
        "export s",
        "MiB",
        "load s",
        "median ms",
        "vs eager fp32",
        "same",
        "max box dev px",
        "max score dev",
    ]
    print(markdown_table(rows, header))


if __name__ == "__main__":
    main()
