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


INT8_KERNELS = ("QLinearConv", "MatMulIntegerToFloat", "QLinearMatMul", "QGemm")


def _node_scopes(path: Path) -> dict[str, str]:
    """Graph node name -> the network part it belongs to (``network.backbone``, ...) or ``after``."""
    import onnx

    from yolactpp.quantize.onnx_int8 import module_scopes

    parts = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        names = module_scopes(node)
        parts[node.name] = names[2] if len(names) > 2 and names[1] == "network" else "after"
    return parts


def _part_of(kernel: str, parts: dict[str, str]) -> str | None:
    """The part of an onnxruntime kernel (its name is a graph node's, maybe with a fusion suffix)."""
    for name in (kernel, kernel.split("_token")[0].removesuffix("_nchwc"), "node_" + kernel.split("_token")[0].removesuffix("_nchwc")):
        if name in parts:
            return parts[name]
    return None  # a node onnxruntime inserted (layout transposes, reorders)


def _median_ms(fns: dict[str, Any], reps: int) -> dict[str, float]:
    """Median ms of each argument-free callable, timed with bench_e2e's ``time_runs``."""
    runs = time_runs({name: (lambda _, fn=fn: fn()) for name, fn in fns.items()}, None, reps, 1)
    return {name: statistics.median(times) for name, times in runs.items()}


def eager_after_network_ms(model: Any, image: Any, reps: int) -> float:
    """Our eager path's detection + FastNMS + mask assembly and cropping for one image (float32,
    on the network's output for ``image``): what the int8 graph's after-network ops replace."""
    import torch

    from yolactpp.detect import detect
    from yolactpp.postprocess import assemble_masks
    from yolactpp.preprocess import preprocess, to_rgb_array

    with torch.inference_mode():
        prepared = preprocess([to_rgb_array(image)], model.config.preprocess)
        out = model.network(prepared.tensor)

        def after() -> None:
            raw = detect(out.loc[0], out.conf[0], out.coefficients[0], out.priors, model.config.detect)
            assemble_masks(out.proto[0], raw.coefficients, raw.boxes)

        return _median_ms({"after": after}, reps)["after"]


def stage_split(path: Path, image: Any, threads: int, eager_model: Any, reps: int = 5) -> dict[str, float]:
    """One int8 prediction, in ms: end to end and the session alone unprofiled, then the session's
    kernels from onnxruntime's profiler by kind (the profiler adds a little to each of the ~1000
    small kernels, so the kinds sum to more than the unprofiled session)."""
    import onnxruntime as ort

    from yolactpp.export import load_exported

    model = load_exported(path, threads=threads)
    feeds = model.input_feeds([image])
    timed = _median_ms(
        {"end to end": lambda: model.predict(image).masks, "session": lambda: model._runtime.run(feeds, model.info.outputs)},
        reps,
    )
    end_to_end, session = timed["end to end"], timed["session"]

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "int8")
    profiled = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    inputs = {i.name for i in profiled.get_inputs()}
    for _ in range(reps):
        profiled.run(None, {k: v for k, v in feeds.items() if k in inputs})
    events = json.loads(Path(profiled.end_profiling()).read_text())
    parts = _node_scopes(path)
    kinds: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        op, part = e["args"]["op_name"], _part_of(e["name"].removesuffix("_kernel_time"), parts)
        if op in INT8_KERNELS:
            kind = "int8 convolutions and products"
        elif op in ("QuantizeLinear", "DequantizeLinear"):
            kind = "quantize / dequantize"
        elif op == "GridSample":
            kind = "DCN sampling (GridSample)"
        elif part is None:
            kind = "layout changes inserted by onnxruntime"
        elif part == "after":
            kind = "after the network: detection, FastNMS, mask assembly, crop"
        else:
            kind = "other float ops in the network (DCN modulation, adds, resize, ...)"
        kinds[kind] += e["dur"] / 1000 / reps
    split = {"Python: preprocess, pixel boxes, full-size masks (end to end - session)": end_to_end - session}
    split.update(sorted(kinds.items(), key=lambda kv: -kv[1]))
    int8 = kinds["int8 convolutions and products"]
    split["session, unprofiled"] = session
    split["end to end, unprofiled"] = end_to_end
    split["outside int8 products, % of the session"] = 100 * (1 - int8 / session)
    split["outside int8 products, % of end to end"] = 100 * (1 - int8 / end_to_end)
    split["eager float32 path: detection, FastNMS, mask assembly, crop"] = eager_after_network_ms(eager_model, image, reps)
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
        splits[name] = stage_split(quantized.path, image, args.threads, model)
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
