"""int8 (onnxruntime, ``model.quantize``) against our bf16 / fp32 paths and Mask R-CNN, per model.

For each model: quantize (export + calibration time), accuracy against float32 (the suite's
criterion: detections scoring >= 0.1 kept with the same class, box IoU >= 0.8, mask IoU >= 0.7, on
the parity images), end-to-end medians of int8 / bf16 / fp32 in one process on one image, the int8
stage split (onnxruntime's profiler by op kind, plus the Python pre/post-processing around the
session), peak RSS of the int8 row (fresh process), and the int8 network against this CPU's int8
convolution peak (bench_ceiling.py --int8). Synthetic oracle weights; run from the repo root:

    python benchmarks/bench_int8.py --models yolact_plus_resnet50 [--maskrcnn] [--reps 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import checkpoint_for, markdown_table
from benchmarks.bench_e2e import DEFAULT_IMAGE, _load_image, _make, _with_backend, peak_rss_mb, time_runs

CALIBRATION = (1, 2, 4)  # sample photographs not among the parity images (chelsea, coffee, camera)


def stage_split(path: Path, image: Any, threads: int, reps: int = 3) -> dict[str, float]:
    """ms per stage of one int8 prediction: Python pre/post-processing and the session's op kinds."""
    import onnxruntime as ort

    from yolactpp.export import load_exported
    from yolactpp.export import predictor as exported

    int8 = "int8 convolutions and products"
    kinds = {"QLinearConv": int8, "MatMulIntegerToFloat": int8, "QLinearMatMul": int8, "QGemm": int8,
             "QuantizeLinear": "quantize / dequantize", "DequantizeLinear": "quantize / dequantize",
             "Conv": "float convolutions", "FusedConv": "float convolutions", "MatMul": "float products",
             "FusedMatMul": "float products", "DeformConv": "DeformConv (float)", "GridSample": "DCN sampling (float)"}  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "int8")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = load_exported(path, threads=threads)
    session_ms: list[float] = []

    class ProfiledRuntime:
        """The model's runtime, but running the profiled session and timing each run."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def run(self, feeds: dict[str, Any], outputs: Any) -> dict[str, Any]:
            start = time.perf_counter()
            out = dict(zip(outputs, session.run(list(outputs), feeds)))
            session_ms.append((time.perf_counter() - start) * 1000)
            return out

    model = exported.ExportedModel(ProfiledRuntime(model._runtime), model.config, model.info, path)
    totals = []
    for _ in range(reps + 1):
        start = time.perf_counter()
        model.predict(image).masks
        totals.append((time.perf_counter() - start) * 1000)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_kind: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_kind[kinds.get(e["args"]["op_name"], "detection, masks, other ops")] += e["dur"] / 1000 / (reps + 1)
    split = {
        "preprocess + pixel boxes + full-size masks (Python)": statistics.median(
            t - s for t, s in zip(totals, session_ms)
        )
    }
    split.update(sorted(per_kind.items(), key=lambda kv: -kv[1]))
    split["total"] = statistics.median(totals)
    split["outside int8 products, % of total"] = 100 * (1 - per_kind.get(int8, 0.0) / split["total"])
    return split


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolact_plus_resnet50")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--maskrcnn", action="store_true", help="also time torchvision's Mask R-CNN (bf16 and fp32, best kept)"
    )
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "yolactpp-bench-int8"))
    args = parser.parse_args(argv)

    import torch

    from tests.oracle.compare import IMAGES, image_path
    from tests.test_quantize import CAP_CLEAR_RANK, kept_fraction
    from yolactpp import YolactPP
    from yolactpp.quantize import int8_support, sample_photographs

    torch.set_num_threads(args.threads)
    image = _load_image(args.image)
    support = int8_support()
    print(f"# image {Path(args.image).name}, {args.threads} threads, median of {args.reps}; torch {torch.__version__}; "
          f"{support.describe()}")  # fmt: skip
    photos = sample_photographs()
    workdir = Path(args.workdir)
    rows, accuracy, splits = [], [], {}
    for name in args.models.split(","):
        checkpoint = checkpoint_for(name)
        model = YolactPP.from_pretrained(checkpoint, config=name)
        start = time.perf_counter()
        quantized = model.quantize(
            [photos[i] for i in CALIBRATION], path=workdir / f"{name}-int8.onnx", progress=False, threads=args.threads, overwrite=True
        )
        quantize_s = time.perf_counter() - start
        cells = []
        for max_rank in (None, CAP_CLEAR_RANK):
            pooled = [0, 0]
            for im in IMAGES:
                m, e = kept_fraction(
                    model.predict(image_path(im)), quantized.predict(image_path(im)), max_rank=max_rank
                )
                pooled[0] += m
                pooled[1] += e
                cells.append(f"{m}/{e}")
            cells.append(f"{pooled[0] / pooled[1]:.0%}")
        accuracy.append([name, *cells, f"{quantize_s:.0f}"])
        specs = {
            "int8": {"kind": "onnx", "path": str(quantized.path)},
            "bf16": {"kind": "yolact", "model": name, "checkpoint": str(checkpoint), "dtype": "bfloat16", "channels_last": True, "fold": True},
            "fp32": {"kind": "yolact", "model": name, "checkpoint": str(checkpoint), "dtype": "float32", "channels_last": True, "fold": True},
        }  # fmt: skip
        fns = {k: _with_backend(_make(s), "auto") for k, s in specs.items()}
        med = {k: statistics.median(v) for k, v in time_runs(fns, image, args.reps, 1).items()}
        rss = "-" if args.no_memory else f"{peak_rss_mb(specs['int8'], args.image, args.threads):.0f}"
        rows.append([name, f"{med['int8']:.0f}", f"{med['bf16']:.0f}", f"{med['fp32']:.0f}",
                     f"{med['bf16'] / med['int8']:.2f}x", f"{med['fp32'] / med['int8']:.2f}x", rss])  # fmt: skip
        splits[name] = stage_split(quantized.path, image, args.threads)
        print(f"# {name} done", file=sys.stderr, flush=True)
    cases = [f"kept {im}" for im in IMAGES]
    top = [f"{c} (top {CAP_CLEAR_RANK})" for c in cases]
    print(
        markdown_table(
            accuracy,
            [
                "model",
                *cases,
                "pooled",
                *top,
                f"pooled top {CAP_CLEAR_RANK}",
                "quantize s (export + calibration, 3 images)",
            ],
        )
    )
    print()
    header = ["model", "int8 ms", "bf16 ms", "fp32 ms", "bf16 / int8", "fp32 / int8", "int8 peak RSS MB"]
    if args.maskrcnn:
        from benchmarks.bench_e2e import build_maskrcnn

        mr = {f"maskrcnn {dt}": build_maskrcnn(dt, dt == "bfloat16") for dt in ("float32", "bfloat16")}
        mr_med = {k: statistics.median(v) for k, v in time_runs(mr, image, args.reps, 1).items()}
        best = min(mr_med, key=mr_med.get)
        print(
            f"# Mask R-CNN at its best ({best}): {mr_med[best]:.0f} ms ({', '.join(f'{k} {v:.0f}' for k, v in mr_med.items())})"
        )
        header.append("Mask R-CNN best / int8")
        for row in rows:
            row.append(f"{mr_med[best] / float(row[1]):.2f}x")
    print(markdown_table(rows, header))
    for name, split in splits.items():
        print()
        print(markdown_table([[k, f"{v:.0f}"] for k, v in split.items()], [f"{name} int8 stage", "ms (or %)"]))


if __name__ == "__main__":
    main()
