"""``yolactpp export``: write a model as an ONNX file or an AOTInductor ``.pt2`` package."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from yolactpp.cli._common import CliError, positive_int, resolve_device

NAME = "export"
FORMATS = ("onnx", "pt2")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="export a model to ONNX or a torch.export/AOTInductor .pt2 package",
        description="Export the whole model (network, detection with FastNMS, masks at prototype resolution, "
        "YOLACT++ re-scoring) to one file carrying its config. Predict with it: yolactpp predict IMG -m FILE. "
        "ONNX files run on onnxruntime without torch (pip install 'yolactpp[onnx]').",
    )
    parser.add_argument("-m", "--model", required=True, help="weights: anything YolactPP.from_pretrained accepts")
    parser.add_argument(
        "--config", metavar="NAME", help="model config name, when it cannot be inferred from the weights"
    )
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default: %(default)s)")
    parser.add_argument("-o", "--output", metavar="FILE", help="output file (default: <config>.<format>)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="weight precision; float16 is for GPU runtimes (default: %(default)s)")  # fmt: skip
    parser.add_argument(
        "--opset", type=positive_int, default=22, metavar="N", help="ONNX opset, >= 19 (default: %(default)s)"
    )
    parser.add_argument(
        "--max-detections",
        type=positive_int,
        metavar="N",
        help="detections per image the file returns at most (default: the config's, 100)",
    )
    parser.add_argument(
        "--top-k",
        type=positive_int,
        metavar="N",
        help="largest per-class NMS candidate count (default: the config's, 200)",
    )
    parser.add_argument(
        "--device", default="cpu", metavar="DEVICE", help="pt2 only: device to compile for, cpu or cuda (default: cpu)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolactpp.model import YolactPP

    if args.format == "onnx" and args.device != "cpu":
        raise CliError("--device applies to --format pt2 only (ONNX files choose their device when loaded)")
    if args.format == "pt2":
        resolve_device(args.device)  # a missing GPU is named before the model loads
    if args.output is not None:  # checked before the model loads; the default name after
        _check_output(Path(args.output), args)
    model = YolactPP.from_pretrained(args.model, config=args.config)
    output = Path(args.output) if args.output else Path(f"{model.config.name}.{args.format}")
    _check_output(output, args)
    options: dict[str, Any] = {
        "dtype": args.dtype, "max_detections": args.max_detections, "top_k": args.top_k, "overwrite": args.overwrite,
    }  # fmt: skip
    if args.format == "onnx":
        options["opset"] = args.opset
    else:
        options["device"] = args.device
    start = time.perf_counter()
    path = model.export(output, format=args.format, **options)
    size = path.stat().st_size / 2**20
    print(
        f"{path}: {model.config.name} as {args.format} ({args.dtype}), {size:.1f} MiB, {time.perf_counter() - start:.1f} s"
    )
    return 0


def _check_output(output: Path, args: argparse.Namespace) -> None:
    from yolactpp.outputs import check_output_file

    if output.suffix != f".{args.format}":
        raise CliError(f"output file for --format {args.format} must end in .{args.format}, got {output.name}")
    check_output_file(output, suffix=output.suffix, overwrite=args.overwrite, inputs=[args.model], what="output file")
