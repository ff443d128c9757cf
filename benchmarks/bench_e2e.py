"""End-to-end CPU latency of yolactpp against its straightforward baseline and Mask R-CNN.

Prints two tables:

1. rows for the fast paths (bfloat16 and float32), the reference-equivalent float32 baseline
   (no BatchNorm folding, NCHW, torchvision DCN) and torchvision's Mask R-CNN (random weights,
   100 detections) at its best setting: median / p90 of ``predict()`` from image to masks at the
   original size, the ratio to the bf16 fast path, and peak RSS (each row in a fresh process).
2. the "ladder": the baseline with one optimization added at a time, so each one's gain shows.

Weights: a checkpoint path, or the deterministic synthetic oracle checkpoint (same shapes and
realistic detection counts; speed does not depend on the values). Run from the repo root:

    python benchmarks/bench_e2e.py --model yolact_plus_resnet50 --image tests/data/oracle/images/landscape_1280x720.png
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO, checkpoint_for, markdown_table  # noqa: E402

DEFAULT_IMAGE = REPO / "tests/data/oracle/images/landscape_1280x720.png"

# name -> (dtype, channels_last, fold_batchnorm, ops backend)
YOLACT_ROWS: dict[str, tuple[str, bool, bool, str]] = {
    "yolactpp bf16 fast": ("bfloat16", True, True, "auto"),
    "yolactpp fp32 fast": ("float32", True, True, "auto"),
    "yolactpp fp32 straightforward": ("float32", False, False, "fallback"),
}
LADDER: list[tuple[str, tuple[str, bool, bool, str]]] = [
    ("baseline: fp32, NCHW, BN separate, torchvision DCN", ("float32", False, False, "fallback")),
    ("+ BatchNorm folded into convs", ("float32", False, True, "fallback")),
    ("+ channels_last", ("float32", True, True, "fallback")),
    ("+ native DCN / FastNMS", ("float32", True, True, "auto")),
    ("+ bfloat16", ("bfloat16", True, True, "auto")),
]


def build_yolact(model: str, checkpoint: Path, dtype: str, channels_last: bool, fold: bool) -> Callable[[Any], Any]:
    import torch

    from yolactpp import YolactPP
    from yolactpp.backbone.fold import set_batchnorm_folding

    net = YolactPP.from_pretrained(checkpoint, config=model)
    net.to(dtype=getattr(torch, dtype), memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    set_batchnorm_folding(net, fold)

    def run(image: Any) -> Any:
        det = net.predict(image)
        return det.masks  # masks at the original size are part of the job

    return run


def build_maskrcnn(
    dtype: str, channels_last: bool, device: str = "cpu", batch_size: int = 1, size: int = 550
) -> Callable[[Any], Any]:
    """torchvision's Mask R-CNN v1, random weights, forced to 100 detections, at YOLACT's 550 px
    (``size``); ``batch_size`` copies of the image per call (the first image's masks are returned
    for a batch of one, else a list). bfloat16 / float16 through autocast on ``device`` (on the
    CPU its NMS/RoIAlign kernels have no bfloat16 version). The caller synchronises a GPU."""
    import numpy as np
    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, box_score_thresh=0.0, box_detections_per_img=100, min_size=size, max_size=size
    ).eval()
    net.to(device=device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    autocast = dtype in ("bfloat16", "float16")
    device_type = torch.device(device).type

    def run(image: Any) -> Any:
        x = torch.from_numpy(np.array(image)).to(device).permute(2, 0, 1).float() / 255
        with torch.inference_mode(), torch.autocast(device_type, dtype=getattr(torch, dtype), enabled=autocast):
            masks = [out["masks"] for out in net([x] * batch_size)]
        return masks[0] if batch_size == 1 else masks

    return run


def time_runs(fns: dict[str, Callable[[Any], Any]], image: Any, reps: int, warmup: int) -> dict[str, list[float]]:
    """Each row warmed up then timed back to back, in two passes (forward, then reverse order) so
    slow drifts of a shared machine hit all rows alike. Rows are not interleaved call by call:
    that evicts oneDNN's cached kernels between calls and times their re-creation instead."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in fns}
    first = max(1, reps // 2)
    for order, count in ((names, first), (names[::-1], reps - first)):
        for name in order:
            fn = fns[name]
            for _ in range(warmup):
                fn(image)
            for _ in range(count):
                start = time.perf_counter()
                fn(image)
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def build_exported(path: str, threads: int | None = None) -> Callable[[Any], Any]:
    """An exported / quantized ``.onnx`` file on onnxruntime (``load_exported``)."""
    import torch

    from yolactpp.export import load_exported

    net = load_exported(path, threads=threads or torch.get_num_threads())

    def run(image: Any) -> Any:
        return net.predict(image).masks

    return run


def _make(spec: dict[str, Any]) -> Callable[[Any], Any]:
    if spec["kind"] == "onnx":
        return build_exported(spec["path"])
    if spec["kind"] == "maskrcnn":
        return build_maskrcnn(spec["dtype"], spec["channels_last"])
    return build_yolact(spec["model"], Path(spec["checkpoint"]), spec["dtype"], spec["channels_last"], spec["fold"])


def peak_rss_mb(spec: dict[str, Any], image_path: str, threads: int) -> float:
    """Peak resident memory (VmHWM) of a fresh process that loads the row's model and predicts
    twice. (ru_maxrss would inherit this parent's size through fork.)"""
    code = (
        "import json, sys, torch; torch.set_num_threads(%d);"
        "sys.path.insert(0, %r); from benchmarks.bench_e2e import _make, _load_image, _with_backend;"
        "spec = json.loads(%r); fn = _with_backend(_make(spec), spec.get('ops', 'auto'));"
        "img = _load_image(%r); fn(img); fn(img);"
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    ) % (threads, str(REPO), json.dumps(spec), image_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024


def _load_image(path: str) -> Any:
    from PIL import Image

    return Image.open(path).convert("RGB")


def _yolact_spec(model: str, checkpoint: Path, cfg: tuple[str, bool, bool, str]) -> dict[str, Any]:
    dtype, cl, fold, ops = cfg
    return {"kind": "yolact", "model": model, "checkpoint": str(checkpoint), "dtype": dtype, "channels_last": cl, "fold": fold, "ops": ops}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolact_plus_resnet50")
    parser.add_argument("--checkpoint", help="original .pth (default: synthetic oracle weights)")
    parser.add_argument("--image", default=str(DEFAULT_IMAGE))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-maskrcnn", action="store_true")
    parser.add_argument("--no-ladder", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--all-models", action="store_true", help="also time the three yolactpp rows for all six models")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile (inductor, freezing) step to the ladder")
    args = parser.parse_args(argv)

    import torch

    import yolactpp.ops

    torch.set_num_threads(args.threads)
    image = _load_image(args.image)
    checkpoint = checkpoint_for(args.model, args.checkpoint)
    print(f"# {args.model}, image {Path(args.image).name} {image.size[0]}x{image.size[1]}, "
          f"{args.threads} threads, median of {args.reps} after {args.warmup} warm-up; torch {torch.__version__}")
    print("# ops: " + "; ".join(f"{i.op}/{i.device}: {i.backend}" for i in yolactpp.ops.backend_info()))

    specs = {name: _yolact_spec(args.model, checkpoint, cfg) for name, cfg in YOLACT_ROWS.items()}
    if not args.no_maskrcnn:
        for dt, cl in (("float32", False), ("bfloat16", True)):
            specs[f"maskrcnn_resnet50_fpn {dt}{' channels_last' if cl else ''}"] = {"kind": "maskrcnn", "dtype": dt, "channels_last": cl}

    fns = {}
    for name, spec in specs.items():
        fns[name] = _with_backend(_make(spec), spec.get("ops", "auto"))
    times = time_runs(fns, image, args.reps, args.warmup)
    med = {n: statistics.median(t) for n, t in times.items()}
    if not args.no_maskrcnn:
        mrcnn = [n for n in med if n.startswith("maskrcnn")]
        best = min(mrcnn, key=med.get)
        for n in mrcnn:
            if n != best:
                del med[n]
        med[best + " (best)"] = med.pop(best)
        times[best + " (best)"] = times.pop(best)
        specs[best + " (best)"] = specs.pop(best)
    ref = med["yolactpp bf16 fast"]
    rows = []
    for name, m in med.items():
        p90 = sorted(times[name])[int(0.9 * (len(times[name]) - 1))]
        rss = "-" if args.no_memory else f"{peak_rss_mb(specs[name], args.image, args.threads):.0f}"
        rows.append([name, f"{m:.0f}", f"{p90:.0f}", f"{m / ref:.2f}x", rss])
    print(markdown_table(rows, ["configuration", "median ms", "p90 ms", "time / bf16 fast", "peak RSS MB"]))

    if not args.no_ladder:
        ladder = {name: _with_backend(_make(_yolact_spec(args.model, checkpoint, cfg)), cfg[3]) for name, cfg in LADDER}
        if args.compile:
            import torch

            from yolactpp import YolactPP

            net = YolactPP.from_pretrained(checkpoint, config=args.model).to(torch.bfloat16)
            run = compiled(net)
            start = time.perf_counter()
            run(image)
            print(f"# torch.compile: first call (compilation) {time.perf_counter() - start:.0f} s")
            ladder["+ torch.compile (inductor, freezing)"] = run
        lt = time_runs(ladder, image, max(3, args.reps // 2), 1)
        lm = {n: statistics.median(t) for n, t in lt.items()}
        base = lm[LADDER[0][0]]
        prev = base
        rows = []
        for name, m in lm.items():
            rows.append([name, f"{m:.0f}", f"{prev / m:.2f}x", f"{base / m:.2f}x"])
            prev = m
        print()
        print(markdown_table(rows, ["step (cumulative)", "median ms", "gain of this step", "speed-up vs baseline"]))

    if args.all_models:
        print()
        print(all_models_table(image, max(3, args.reps // 2), 1))


def all_models_table(image: Any, reps: int, warmup: int) -> str:
    """bf16 fast / fp32 fast / fp32 straightforward medians for every released model."""
    from yolactpp import list_models

    rows = []
    for model in [m for m in list_models() if m.startswith("yolact_")]:
        checkpoint = checkpoint_for(model, None)
        fns = {name: _with_backend(_make(_yolact_spec(model, checkpoint, cfg)), cfg[3]) for name, cfg in YOLACT_ROWS.items()}
        med = {n: statistics.median(t) for n, t in time_runs(fns, image, reps, warmup).items()}
        bf16, fp32, base = (med[n] for n in YOLACT_ROWS)
        rows.append([model, f"{bf16:.0f}", f"{fp32:.0f}", f"{base:.0f}", f"{base / bf16:.2f}x", f"{base / fp32:.2f}x"])
    return markdown_table(rows, ["model", "bf16 fast ms", "fp32 fast ms", "fp32 straightforward ms", "straightforward / bf16", "straightforward / fp32"])


def compiled(net: Any) -> Callable[[Any], Any]:
    """The row's network under torch.compile (inductor with freezing; BatchNorm left to it)."""
    import torch
    import torch._inductor.config as inductor_config

    from yolactpp.backbone.fold import set_batchnorm_folding

    inductor_config.freezing = True
    set_batchnorm_folding(net, False)
    net.network = torch.compile(net.network)

    def run(image: Any) -> Any:
        return net.predict(image).masks

    return run


def _with_backend(fn: Callable[[Any], Any], backend: str) -> Callable[[Any], Any]:
    import yolactpp.ops

    def run(image: Any) -> Any:
        with yolactpp.ops.use_backend(backend):  # type: ignore[arg-type]
            return fn(image)

    return run


if __name__ == "__main__":
    main()
