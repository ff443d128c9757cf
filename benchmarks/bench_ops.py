"""Speed of the native ops against their baselines, as ratios measured in one process.

DCN: every deformable layer shape of yolact_plus_resnet50 at 550x550 (3x3, padding 1, one offset
group, batch 1, C_out = C_in), against ``torch.nn.functional.conv2d`` of the same shape and dtype
(the floor a DCN can hope for) and ``torchvision.ops.deform_conv2d`` (what the model would
otherwise run; it has no bfloat16 CPU kernel, so bfloat16 rows time it on float32 copies).
Backward rows time only the gradient computation (input, offset, mask, weight and bias; the
forward runs untimed before each rep) of the same three: conv2d's backward (input, weight, bias),
torchvision's DCN backward and the native one.
FastNMS: 19,248 priors x 80 classes with K candidates left after the score pre-filter, native
kernel against the pure-PyTorch reference.

Timings interleave the contenders rep by rep (so they share whatever load the machine has) and
report medians. Run: ``PYTHONPATH=src python benchmarks/bench_ops.py [--reps 15] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
import torchvision

from yolactpp import ops

# (label, channels, input size, stride) of yolact_plus_resnet50's DCN layers at 550x550.
DCN_SHAPES = [
    ("C3 128@69", 128, 69, 1),
    ("C4 256@35", 256, 35, 1),
    ("C5 512@18", 512, 18, 1),
    ("C3.0 128@138/2", 128, 138, 2),
    ("C4.0 256@69/2", 256, 69, 2),
    ("C5.0 512@35/2", 512, 35, 2),
]
DCN_MODES = {
    "fp32": (torch.float32, torch.contiguous_format),
    "fp32-cl": (torch.float32, torch.channels_last),
    "bf16-cl": (torch.bfloat16, torch.channels_last),
}


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def interleaved(fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2) -> dict[str, float]:
    """Median milliseconds per function, timing them round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            start = clock()
            fn()
            times[name].append(clock() - start)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def dcn_inputs(channels: int, size: int, stride: int, dtype: torch.dtype, fmt: torch.memory_format):
    gen = torch.Generator().manual_seed(0)
    out = (size + 2 - 3) // stride + 1
    x = torch.randn(1, channels, size, size, generator=gen).to(dtype).contiguous(memory_format=fmt)
    weight = (torch.randn(channels, channels, 3, 3, generator=gen) * 0.03).to(dtype)
    bias = torch.randn(channels, generator=gen).to(dtype)
    # Like the DCN layer: offsets and mask sliced from one conv output, mask through a sigmoid.
    offset_mask = (torch.randn(1, 27, out, out, generator=gen) * 2).to(dtype).contiguous(memory_format=fmt)
    return x, offset_mask[:, :18], weight, bias, offset_mask[:, 18:].sigmoid()


def bench_dcn(reps: int, modes: list[str]) -> None:
    print("| shape | dtype | conv2d ms | torchvision ms | ours ms | ours/conv2d | torchvision/ours |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        dtype, fmt = DCN_MODES[mode]
        for label, channels, size, stride in DCN_SHAPES:
            x, offset, weight, bias, mask = dcn_inputs(channels, size, stride, dtype, fmt)
            x32, off32, w32, b32, m32 = (t.float() for t in (x, offset, weight, bias, mask))
            s, p = (stride, stride), (1, 1)
            fns = {
                "conv2d": lambda: F.conv2d(x, weight, bias, s, p),
                "torchvision": lambda: torchvision.ops.deform_conv2d(x32, off32, w32, b32, s, p, mask=m32),
                "ours": lambda: ops.deform_conv2d(x, offset, weight, bias, s, p, mask=mask),
            }
            with torch.no_grad(), ops.use_backend("native"):
                t = interleaved(fns, reps)
            tv = f"{t['torchvision']:.2f}" + (" (fp32)" if dtype != torch.float32 else "")
            print(
                f"| {label} | {mode} | {t['conv2d']:.2f} | {tv} | {t['ours']:.2f} | "
                f"{t['ours'] / t['conv2d']:.2f} | {t['torchvision'] / t['ours']:.1f} |",
                flush=True,
            )


def backward_timer(forward: Callable[[], torch.Tensor], inputs: list[torch.Tensor]) -> Callable[[], float]:
    """A rep that runs ``forward`` untimed and returns the clock time of its backward alone."""

    def rep() -> float:
        out = forward()
        grad = torch.ones_like(out)
        start = clock()
        torch.autograd.grad(out, inputs, grad)
        return clock() - start

    return rep


def interleaved_self_timed(fns: dict[str, Callable[[], float]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median milliseconds of functions that time themselves, run round-robin."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            times[name].append(fn())
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def bench_dcn_backward(reps: int, modes: list[str]) -> None:
    print("\n| backward: shape | dtype | conv2d ms | torchvision ms | ours ms | ours/conv2d | torchvision/ours |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for mode in modes:
        dtype, fmt = DCN_MODES[mode]
        for label, channels, size, stride in DCN_SHAPES:
            x, offset, weight, bias, mask = (t.detach().requires_grad_() for t in dcn_inputs(channels, size, stride, dtype, fmt))
            x32, off32, w32, b32, m32 = (t.detach().float().requires_grad_() for t in (x, offset, weight, bias, mask))
            s, p = (stride, stride), (1, 1)
            dcn = [x, offset, weight, bias, mask]
            fns = {
                "conv2d": backward_timer(lambda: F.conv2d(x, weight, bias, s, p), [x, weight, bias]),
                "torchvision": backward_timer(
                    lambda: torchvision.ops.deform_conv2d(x32, off32, w32, b32, s, p, mask=m32),
                    [x32, off32, w32, b32, m32],
                ),
                "ours": backward_timer(lambda: ops.deform_conv2d(x, offset, weight, bias, s, p, mask=mask), dcn),
            }
            with ops.use_backend("native"):
                t = interleaved_self_timed(fns, reps)
            tv = f"{t['torchvision']:.2f}" + (" (fp32)" if dtype != torch.float32 else "")
            print(
                f"| {label} | {mode} | {t['conv2d']:.2f} | {tv} | {t['ours']:.2f} | "
                f"{t['ours'] / t['conv2d']:.2f} | {t['torchvision'] / t['ours']:.1f} |",
                flush=True,
            )


def nms_inputs(candidates: int, num_classes: int = 80, priors: int = 19248):
    """Boxes and [C, K] scores of K candidates, scores softmax-like as the model's."""
    gen = torch.Generator().manual_seed(0)
    centers = torch.rand(priors, 2, generator=gen)
    sizes = torch.rand(priors, 2, generator=gen) * 0.3 + 0.02
    boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    conf = torch.softmax(torch.randn(priors, num_classes + 1, generator=gen) * 2.5, dim=1)[:, 1:]
    best = conf.amax(dim=1).argsort(descending=True)[:candidates]
    return boxes[best], conf[best].t()  # scores as a transposed view, as detect() passes them


def bench_nms(reps: int) -> None:
    print("\n| FastNMS 80 classes | dtype | reference ms | native ms | reference/native |")
    print("|---|---|---:|---:|---:|")
    for candidates in (500, 2000, 19248):
        for dtype in (torch.float32, torch.float64):
            boxes, scores = nms_inputs(candidates)
            boxes, scores = boxes.to(dtype), scores.to(dtype)
            fns = {
                "reference": lambda: ops.fast_nms_reference(boxes, scores, 0.5, 200, 100),
                "native": lambda: ops.fast_nms(boxes, scores, 0.5, 200, 100),
            }
            with ops.use_backend("native"):
                t = interleaved(fns, reps)
            name = str(dtype).removeprefix("torch.")
            print(
                f"| K = {candidates} | {name} | {t['reference']:.2f} | {t['native']:.2f} | "
                f"{t['reference'] / t['native']:.1f} |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=15, help="timed repetitions per contender (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--only", choices=("dcn", "backward", "nms"), help="run one of the three tables")
    parser.add_argument("--modes", default="fp32,bf16-cl", help=f"DCN modes, comma-separated: {', '.join(DCN_MODES)}")
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="wall time, or process CPU time (meaningful with --threads 1 on a loaded machine)",
    )
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    torch.set_num_threads(args.threads)
    for info in ops.backend_info():
        print(f"# {info.op} on {info.device}: {info.backend} ({info.reason})")
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
          f"median {args.clock} time of {args.reps} interleaved reps\n")
    if args.only in (None, "dcn"):
        bench_dcn(args.reps, args.modes.split(","))
    if args.only in (None, "backward"):
        bench_dcn_backward(args.reps, args.modes.split(","))
    if args.only in (None, "nms"):
        bench_nms(args.reps)


if __name__ == "__main__":
    main()
