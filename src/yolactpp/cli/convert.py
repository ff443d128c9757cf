"""``yolactpp convert``: an original ``.pth`` release file -> the library's own weights folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from yolactpp.cli._common import add_class_names_argument, read_class_names

NAME = "convert"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="convert an original .pth checkpoint to yolactpp's own format",
        description="Convert an original YOLACT/YOLACT++ .pth release file into a folder that "
        "YolactPP.from_pretrained loads (config.json + model.safetensors).",
    )
    parser.add_argument("source", help="original checkpoint, e.g. yolact_plus_base_54_800000.pth")
    parser.add_argument("output_dir", type=Path, help="folder to write")
    parser.add_argument("--config", metavar="NAME", help="model config name, when it cannot be inferred from the file name")
    add_class_names_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from yolactpp.serialization import convert

    result = convert(args.source, args.output_dir, config=args.config, class_names=read_class_names(args.class_names))
    print(f"converted {args.source} -> {result}")
    return 0
