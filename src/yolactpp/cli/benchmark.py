"""``yolactpp benchmark``: end-to-end ``predict`` latency of a model on this machine."""

from __future__ import annotations

import argparse
from typing import Any

from yolactpp.cli._common import add_model_arguments, image_size, load_model, non_negative_int, positive_int

NAME = "benchmark"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="time end-to-end predict (median and p90 latency)",
        description="Warm up, then time N calls of predict, each including preprocessing, the network, "
        "detection and (unless --no-masks) full-resolution masks. Prints one table row.",
    )
    add_model_arguments(parser)
    parser.add_argument("--image", metavar="FILE", help="image to run on (default: a synthetic image of --image-size)")
    parser.add_argument(
        "--image-size", type=image_size, default=(720, 1280), metavar="WxH",
        help="synthetic image size, width x height (default: 1280x720)",
    )  # fmt: skip
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="N", help="images per predict call (default: 1)")
    parser.add_argument("--warmup", type=non_negative_int, default=2, metavar="N", help="untimed calls first (default: 2)")
    parser.add_argument("--reps", type=positive_int, default=10, metavar="N", help="timed calls (default: 10)")
    parser.add_argument("--no-masks", action="store_true", help="do not build full-resolution masks in the timed calls")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolactpp.benchmark import benchmark_predict, format_table
    from yolactpp.preprocess import load_image

    image = load_image(args.image) if args.image is not None else None
    model = load_model(args)
    result = benchmark_predict(
        model,
        image,
        image_size=args.image_size,
        batch_size=args.batch_size,
        warmup=args.warmup,
        reps=args.reps,
        include_masks=not args.no_masks,
    )
    print(format_table([result]))
    return 0
