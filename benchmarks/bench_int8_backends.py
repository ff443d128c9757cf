"""Which int8 convolution engine: onnxruntime's ``QLinearConv`` against torch's oneDNN int8
convolution (what PT2E / X86InductorQuantizer programs call), per layer shape of YOLACT++, with
torch float32 and bfloat16 (channels_last) as the yardsticks. One process, 2 threads by default:

    python benchmarks/bench_int8_backends.py [--threads 2] [--reps 10]

Both int8 engines get the same uint8 activations and per-channel int8 weights; the torch one is
called eagerly (an Inductor program calls the same kernel, adding only fusion of the ops around it).
"""

# ruff: noqa: B023 (each closure is timed within the loop iteration that defines it)
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import markdown_table
from benchmarks.bench_e2e import time_runs

#: (in channels, out channels, size, what it is in yolact_plus_resnet50 at 550 px)
SHAPES = (
    (256, 256, 69, "FPN / ProtoNet 3x3 at P3"),
    (256, 256, 138, "ProtoNet 3x3 after upsampling"),
    (256, 1053, 69, "head outputs at P3 (float output)"),
    (128, 128, 69, "C3 block 3x3"),
    (512, 512, 18, "C5 block 3x3"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)

    import numpy as np
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from yolactpp.runtime.int8 import int8_support

    torch.set_num_threads(args.threads)
    print(f"# {args.threads} threads, median of {args.reps}; torch {torch.__version__}, onnxruntime {ort.__version__}; "
          f"{int8_support().describe()}")  # fmt: skip
    rows = []
    for cin, cout, size, what in SHAPES:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, cin, size, size, generator=gen)
        w = torch.randn(cout, cin, 3, 3, generator=gen) * cin**-0.5
        bias = torch.zeros(cout)
        x_scale, w_scale = float(x.abs().max() / 127), w.abs().amax(dim=(1, 2, 3)) / 127
        qx = (torch.round(x / x_scale) + 128).clamp(0, 255).to(torch.uint8).contiguous(memory_format=torch.channels_last)
        qw = torch.round(w / w_scale.view(-1, 1, 1, 1)).clamp(-127, 127).to(torch.int8)
        packed = torch.ops.onednn.qconv_prepack(qw, w_scale, x_scale, 128, [1, 1], [1, 1], [1, 1], 1, list(x.shape))
        zero = torch.zeros(cout, dtype=torch.int32)
        float_out = "float output" in what

        def onednn() -> object:
            return torch.ops.onednn.qconv2d_pointwise(
                qx, x_scale, 128, packed, w_scale, zero, bias, [1, 1], [1, 1], [1, 1], 1,
                1.0 if float_out else 0.05, 0 if float_out else 128, torch.float32 if float_out else None, "none", [], "",
            )  # fmt: skip

        conv = torch.nn.Conv2d(cin, cout, 3, padding=1).eval().to(memory_format=torch.channels_last)
        conv_bf16 = torch.nn.Conv2d(cin, cout, 3, padding=1).eval().to(torch.bfloat16, memory_format=torch.channels_last)
        x_cl, x_bf16 = x.contiguous(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last).bfloat16()
        inits = [
            numpy_helper.from_array(np.array(x_scale, np.float32), "xs"), numpy_helper.from_array(np.array(128, np.uint8), "xz"),
            numpy_helper.from_array(qw.numpy(), "w"), numpy_helper.from_array(w_scale.numpy().astype(np.float32), "ws"),
            numpy_helper.from_array(np.zeros(cout, np.int8), "wz"), numpy_helper.from_array(np.array(0.05, np.float32), "ys"),
            numpy_helper.from_array(np.array(128, np.uint8), "yz"),
        ]  # fmt: skip
        node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=[1, 1, 1, 1])
        graph = helper.make_graph(
            [node], "conv", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
            [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits,
        )  # fmt: skip
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = args.threads, 1
        session = ort.InferenceSession(
            helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]).SerializeToString(), options,
            providers=["CPUExecutionProvider"],
        )  # fmt: skip
        feeds = {"x": qx.contiguous().numpy()}
        with torch.no_grad():
            runs = time_runs(
                {
                    "fp32": lambda _: conv(x_cl),
                    "bf16": lambda _: conv_bf16(x_bf16),
                    "oneDNN int8": lambda _: onednn(),
                    "onnxruntime int8": lambda _: session.run(None, feeds),
                },
                None, args.reps, 2,
            )  # fmt: skip
            ms = {name: statistics.median(times) for name, times in runs.items()}
        gmac = cin * cout * 9 * size * size / 1e9
        rows.append([
            f"{cin}->{cout} @{size}^2 ({what})", f"{gmac:.2f}", *(f"{v:.1f}" for v in ms.values()),
            f"{ms['bf16'] / ms['onnxruntime int8']:.2f}x", f"{ms['oneDNN int8'] / ms['onnxruntime int8']:.2f}x",
        ])  # fmt: skip
    print(markdown_table(rows, ["3x3 convolution", "GMAC", "torch fp32 ms", "torch bf16 ms", "oneDNN int8 ms",
                                "onnxruntime int8 ms", "bf16 / ort int8", "oneDNN / ort int8"]))  # fmt: skip


if __name__ == "__main__":
    main()
