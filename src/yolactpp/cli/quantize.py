"""``yolactpp quantize``: an int8 ONNX model for the CPU, calibrated on your images or the default photographs."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from yolactpp.cli._common import CliError, positive_int

NAME = "quantize"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="quantize a model to int8 for the CPU (an ONNX file for onnxruntime)",
        description="Export the model to ONNX, measure its activation ranges on calibration images and quantize "
        "every convolution and product of the network to int8 with onnxruntime (pip install 'yolactpp[int8]'). "
        "Predict with the result: "
        "yolactpp predict IMG -m OUT.onnx. int8 pays on CPUs with VNNI (AVX512-VNNI, AVX-VNNI), AMX or the ARM "
        "dot-product extension; elsewhere it is little faster than float32.",
    )
    parser.add_argument("-m", "--model", required=True, help="weights: anything YolactPP.from_pretrained accepts")
    parser.add_argument(
        "--config", metavar="NAME", help="model config name, when it cannot be inferred from the weights"
    )
    parser.add_argument(
        "--calibration", metavar="PATH",
        help="a folder of images (or one image) like those the model will see (default: five public-domain "
        "photographs shipped with scikit-image)",
    )  # fmt: skip
    parser.add_argument("--count", type=positive_int, metavar="N", help="calibrate on at most N images (default: 32)")
    parser.add_argument("-o", "--output", metavar="FILE", help="output .onnx file (default: <config>-int8.onnx)")
    parser.add_argument(
        "--threads", type=positive_int, metavar="N", help="onnxruntime threads while calibrating (default: all cores)"
    )
    parser.add_argument(
        "--weight-bits", type=int, choices=(7, 8), metavar="{7,8}",
        help="weight range: 8 (full) or 7 (needed where the CPU running the file lacks VNNI/AMX, whose 16-bit "
        "sums 8-bit weights saturate) (default: 8 on a CPU with int8 dot products, else 7)",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolactpp.model import YolactPP
    from yolactpp.quantize import SlowInt8Warning, calibration_images, int8_support
    from yolactpp.quantize.onnx_int8 import default_weight_bits

    output = Path(args.output) if args.output else None
    if output is not None:  # checked before the model loads; the default name after
        _check_output(output, args)
    images = calibration_images(args.calibration, args.count)  # bad folders fail before the model loads
    model = YolactPP.from_pretrained(args.model, config=args.config)
    output = output or _check_output(Path(f"{model.config.name}-int8.onnx"), args)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowInt8Warning)  # said below, in plain words
        quantized = model.quantize(
            images, count=len(images), path=output, progress=not args.quiet, threads=args.threads,
            overwrite=args.overwrite, weight_bits=args.weight_bits,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    size = quantized.path.stat().st_size / 2**20
    print(
        f"{quantized.path}: {model.config.name} int8 ({args.weight_bits or default_weight_bits()}-bit weights), "
        f"{size:.1f} MiB, calibrated on {len(images)} image(s) in {seconds:.0f} s"
    )
    support = int8_support()
    if not support.accelerated:
        print(f"note: {support.describe()}", file=sys.stderr)
    return 0


def _check_output(output: Path, args: argparse.Namespace) -> Path:
    from yolactpp.outputs import check_output_file

    if output.suffix != ".onnx":
        raise CliError(f"the output is an ONNX file: its name must end in .onnx, got {output.name}")
    return check_output_file(output, suffix=".onnx", overwrite=args.overwrite, inputs=[args.model], what="output file")

