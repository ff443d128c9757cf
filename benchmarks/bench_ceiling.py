"""How close the network runs to this machine's limit: measured throughputs, network FLOPs, floors.

Prints two tables: the machine's matmul / convolution throughput (float32 and bfloat16
channels_last, and with onnxruntime installed float32 and int8 QLinearConv: the int8 peak) with a
ResNet-50-to-C5 reference latency, and per model the network's FLOPs
(convolutions counted by torch's FlopCounterMode, deformable convolutions added from their shapes),
the floor FLOPs / peak-conv-throughput and the network's measured time against that floor.

    .venv/bin/python benchmarks/bench_ceiling.py [--models yolact_plus_resnet50,...] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import checkpoint_for, markdown_table  # noqa: E402


def median_ms(fn: Callable[[], Any], reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def throughput_rows(reps: int) -> list[list[str]]:
    """GFLOP/s of a large matmul and of a 3x3 convolution of C4's shape, plus ResNet-50 to C5."""
    import torch
    import torch.nn.functional as F
    import torchvision

    rows = []
    cl = torch.channels_last
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        ms = median_ms(lambda: a @ b, reps)
        rows.append([f"matmul 2048^3 {dtype}", f"{ms:.1f}", f"{2 * 2048**3 / ms / 1e6:.0f}"])
        x = torch.randn(1, 256, 69, 69, dtype=dtype).to(memory_format=cl)
        w = torch.randn(256, 256, 3, 3, dtype=dtype).to(memory_format=cl)
        ms = median_ms(lambda: F.conv2d(x, w, padding=1), reps)
        rows.append([f"conv3x3 256->256 @69^2 {dtype} channels_last", f"{ms:.2f}",
                     f"{2 * 256 * 256 * 9 * 69 * 69 / ms / 1e6:.0f}"])
        body = torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]).eval()
        body = body.to(dtype=dtype, memory_format=cl)
        img = torch.randn(1, 3, 550, 550, dtype=dtype).to(memory_format=cl)
        with torch.inference_mode():
            ms = median_ms(lambda: body(img), reps)
        rows.append([f"ResNet-50 to C5 @550^2 {dtype} channels_last (~50.9 GFLOP)", f"{ms:.0f}", f"{50.9e9 / ms / 1e6:.0f}"])
    return rows


def _onnx_conv(int8: bool, channels: int = 256, side: int = 69) -> bytes:
    """A one-node ONNX model: the 3x3 convolution of C4's shape, float32 ``Conv`` or int8
    ``QLinearConv`` (uint8 activations, per-channel int8 weights in the 7-bit range yolactpp's
    quantizer writes)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((channels, channels, 3, 3)).astype(np.float32) * 0.05
    io_type = TensorProto.UINT8 if int8 else TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", io_type, [1, channels, side, side])
    y = helper.make_tensor_value_info("y", io_type, None)
    if int8:
        inits = [
            numpy_helper.from_array(np.clip(np.round(w / 0.002), -63, 63).astype(np.int8), "w"),
            numpy_helper.from_array(np.full(channels, 0.002, np.float32), "w_scale"),
            numpy_helper.from_array(np.zeros(channels, np.int8), "w_zero"),
            numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "x_zero"),
            numpy_helper.from_array(np.array(0.05, np.float32), "y_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "y_zero"),
        ]
        node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zero", "w", "w_scale", "w_zero", "y_scale", "y_zero"], ["y"], pads=[1] * 4)
    else:
        inits = [numpy_helper.from_array(w, "w")]
        node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)
    model = helper.make_model(helper.make_graph([node], "conv", [x], [y], inits), opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model.SerializeToString()


def onnxruntime_rows(reps: int, threads: int) -> list[list[str]]:
    """GOP/s of the C4-shaped 3x3 convolution on onnxruntime: float32 and int8 (the int8 peak)."""
    import numpy as np
    import onnxruntime as ort

    rows = []
    for int8 in (False, True):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(_onnx_conv(int8), options, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (1, 256, 69, 69), dtype=np.uint8) if int8 else rng.standard_normal((1, 256, 69, 69), dtype=np.float32)
        ms = median_ms(lambda: session.run(None, {"x": x}), reps)
        rows.append([f"onnxruntime conv3x3 256->256 @69^2 {'int8 (QLinearConv)' if int8 else 'float32'}", f"{ms:.2f}",
                     f"{2 * 256 * 256 * 9 * 69 * 69 / ms / 1e6:.0f}"])  # fmt: skip
    return rows


def network_gflop(model: Any, size: int) -> float:
    """FLOPs of one forward pass at size x size: FlopCounterMode for standard ops, DCN from shapes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from yolactpp.backbone.dcn import ModulatedDeformConv2d

    dcn_flops = 0

    def counter_for(dcn: ModulatedDeformConv2d) -> Callable[..., None]:
        # The DCN runs through forward_with_params (BatchNorm folding), so its own hooks stay
        # silent; its offset conv is called normally and has the DCN's output size.
        def count(_module: Any, _inputs: Any, offsets: Any) -> None:
            nonlocal dcn_flops
            n, _, h, w = offsets.shape
            dcn_flops += 2 * n * h * w * dcn.weight.numel()

        return count

    hooks = [m.conv_offset_mask.register_forward_hook(counter_for(m))
             for m in model.modules() if isinstance(m, ModulatedDeformConv2d)]
    counter = FlopCounterMode(display=False)
    try:
        with torch.inference_mode(), counter:
            model.network(torch.zeros(1, 3, size, size, dtype=model.dtype))
    finally:
        for hook in hooks:
            hook.remove()
    return (counter.get_total_flops() + dcn_flops) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolact_plus_resnet50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()

    import torch

    from yolactpp import YolactPP

    torch.set_num_threads(args.threads)
    print(f"# {args.threads} threads, median of {args.reps}; torch {torch.__version__}")
    from yolactpp.quantize import int8_support

    print(f"# {int8_support().describe()}")
    rows = throughput_rows(args.reps)
    conv_peak = {"float32": float(rows[1][2]), "bfloat16": float(rows[4][2])}
    try:
        rows += onnxruntime_rows(args.reps, args.threads)
        conv_peak["int8"] = float(rows[-1][2])
    except ImportError:
        print("# onnxruntime/onnx not installed: no int8 rows (pip install 'yolactpp[int8]')")
    print(markdown_table(rows, ["kernel", "ms", "GFLOP/s (GOP/s for int8)"]))

    print()
    out = []
    for name in args.models.split(","):
        path = checkpoint_for(name)
        for dtype in (torch.float32, torch.bfloat16):
            model = YolactPP.from_pretrained(path).to(dtype=dtype, memory_format=torch.channels_last)
            size = model.config.preprocess.size
            gflop = network_gflop(model, size)
            x = torch.randn(1, 3, size, size, dtype=dtype).to(memory_format=torch.channels_last)
            with torch.inference_mode():
                ms = median_ms(lambda: model.network(x), args.reps)
            peak = conv_peak[str(dtype).removeprefix("torch.")]
            floor = gflop / peak * 1000
            out.append([name, str(dtype).removeprefix("torch."), f"{size}", f"{gflop:.1f}", f"{ms:.0f}",
                        f"{floor:.0f}", f"{gflop / ms * 1000:.0f}", f"{floor / ms:.0%}"])
        if "int8" in conv_peak:  # the int8 network's time: benchmarks/bench_int8.py (stage split)
            out.append([name, "int8", f"{size}", f"{gflop:.1f}", "see bench_int8", f"{gflop / conv_peak['int8'] * 1000:.0f}", "-", "-"])
    print(markdown_table(out, ["model", "dtype", "input", "GFLOP", "network ms", "floor ms (GFLOP / conv peak)",
                                "achieved GFLOP/s", "of peak"]))


if __name__ == "__main__":
    main()
