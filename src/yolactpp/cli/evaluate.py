"""``yolactpp eval``: box and mask AP of a model on a COCO-format annotated image set."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from yolactpp.cli._common import add_model_arguments, load_model, positive_int
from yolactpp.errors import MissingFileError

NAME = "eval"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="COCO box and mask AP on an annotated image set (pycocotools)",
        description="Predict on every image of a COCO instances annotation file and print box and mask AP "
        "(in percent; '-' where the set has no objects of that size). Model classes are matched to the "
        "annotation categories by name.",
    )
    parser.add_argument("--annotations", type=Path, required=True, metavar="FILE", help="COCO instances JSON (e.g. instances_val2017.json)")
    parser.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder the annotations' file_name entries are in")
    add_model_arguments(parser)
    parser.add_argument("--limit", type=positive_int, metavar="N", help="evaluate only the first N images (by image id)")
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="N", help="images per forward pass (default: 1)")
    parser.add_argument("--save-results", type=Path, metavar="PATH", help="also write the scored COCO result records here")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from yolactpp.evaluate import evaluate_coco

    for path, what in ((args.annotations, "annotation file"), (args.images, "image folder")):
        if not path.exists():
            raise MissingFileError(f"{what} not found: {path}")
    model = load_model(args)

    def progress(stream: Any, total: int) -> Any:
        return tqdm(stream, total=total, unit="image", disable=args.quiet, file=sys.stderr, leave=False)

    result = evaluate_coco(
        model, args.annotations, args.images, limit=args.limit, batch_size=args.batch_size, progress=progress
    )
    if args.save_results is not None:
        args.save_results.parent.mkdir(parents=True, exist_ok=True)
        args.save_results.write_text(json.dumps(result.results))
    print(f"{model.config.name} on {result.num_images} image{'s' if result.num_images != 1 else ''} (AP in %):")
    print(result.table())
    return 0
