"""``yolactpp convert``: an original ``.pth`` release file -> the library's own weights folder.

Uses ``yolactpp.convert(source, output_dir, config=None)``, imported when the command runs.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from yolactpp.cli._common import zoo_api

NAME = "convert"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="convert an original .pth checkpoint to yolactpp's own format",
        description="Convert an original YOLACT/YOLACT++ .pth release file into a folder that "
        "YolactPP.from_pretrained loads (config.json + weights).",
    )
    parser.add_argument("source", help="original checkpoint, e.g. yolact_plus_base_54_800000.pth")
    parser.add_argument("output_dir", type=Path, help="folder to write")
    parser.add_argument("--config", metavar="NAME", help="model config name, when it cannot be inferred from the file name")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    convert = getattr(importlib.import_module("yolactpp"), "convert", None)
    if convert is None or not callable(convert):  # not re-exported: take it from its module
        convert = zoo_api("yolactpp.convert", "convert")
    result = convert(args.source, args.output_dir, config=args.config)
    print(f"converted {args.source} -> {result if result is not None else args.output_dir}")
    return 0
