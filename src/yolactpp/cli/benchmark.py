"""``yolactpp benchmark``: end-to-end ``predict`` latency of one or more models on this machine."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

from yolactpp.cli._common import (
    DTYPES,
    CliError,
    add_model_arguments,
    image_size,
    load_model,
    non_negative_int,
    positive_int,
)
from yolactpp.concurrency import torch_threads

NAME = "benchmark"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="time end-to-end predict (median and p90 latency), of one model or several side by side",
        description="Warm up, then time N calls of predict, each including preprocessing, the network, "
        "detection and (unless --no-masks) full-resolution masks. Prints one table row per model; with "
        "--also, further models (exported .onnx/.pt2 files, int8 files, other dtypes) are timed in the same "
        "run on the same image, with their speed-up over the first row.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--also", action="append", default=[], metavar="MODEL[@DTYPE]",
        help="another model to time in the same run: an exported .onnx / .pt2 file or weights; weights take "
        "--config and --dtype unless a dtype follows '@' (e.g. weights.pth@bfloat16). Repeatable.",
    )  # fmt: skip
    parser.add_argument("--threads", type=positive_int, metavar="N", help="CPU threads for every model (default: the runtime's)")
    parser.add_argument("--image", metavar="FILE", help="image to run on (default: a synthetic image of --image-size)")
    parser.add_argument(
        "--image-size", type=image_size, default=(720, 1280), metavar="WxH",
        help="synthetic image size, width x height (default: 1280x720)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="N", help="images per predict call (default: 1)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, metavar="N", help="untimed calls first (default: 2)")
    parser.add_argument("--reps", type=positive_int, default=10, metavar="N", help="timed calls (default: 10)")
    parser.add_argument("--no-masks", action="store_true", help="do not build full-resolution masks in the timed calls")
    parser.add_argument(
        "--json", metavar="FILE",
        help="also write the rows to FILE as JSON (a list of objects; times in milliseconds); FILE must not exist",
    )  # fmt: skip
    parser.set_defaults(run=run)


def _model_arguments(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One namespace per model to time: ``-m`` first, then each ``--also``, checked before any loading."""
    out = [args]
    for spec in args.also:
        path, sep, dtype = spec.rpartition("@")
        extra = copy.copy(args)
        if sep and dtype in DTYPES:
            extra.model, extra.dtype = path, dtype
        elif sep and path and "/" not in dtype and "." not in dtype:
            raise CliError(f"--also {spec}: unknown dtype {dtype!r}; choose from {', '.join(DTYPES)}")
        else:
            extra.model = spec
        out.append(extra)
    return out


def run(args: argparse.Namespace) -> int:
    from yolactpp.benchmark import benchmark_predict, format_table
    from yolactpp.preprocess import load_image

    specs = _model_arguments(args)
    json_path = Path(args.json) if args.json is not None else None
    if json_path is not None and json_path.exists():
        raise CliError(f"--json {json_path}: the file exists; choose a new name (results are never overwritten)")
    if json_path is not None and not json_path.parent.is_dir():
        raise CliError(f"--json {json_path}: folder {json_path.parent} does not exist")
    image = load_image(args.image) if args.image is not None else None
    results = []
    for spec in specs:
        model = load_model(spec)
        with torch_threads(args.threads if getattr(model, "runtime", "torch") == "torch" else None):
            results.append(
                benchmark_predict(
                    model,
                    image,
                    image_size=args.image_size,
                    batch_size=args.batch_size,
                    warmup=args.warmup,
                    reps=args.reps,
                    include_masks=not args.no_masks,
                )
            )
        del model
    print(format_table(results))
    if json_path is not None:
        json_path.write_text(json.dumps([r.row() for r in results], indent=1) + "\n")
    return 0
