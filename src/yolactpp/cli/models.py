"""``yolactpp models``: the model zoo, its published figures, and which weights are cached."""

from __future__ import annotations

import argparse
import fnmatch
from typing import Any

from yolactpp.cli._common import CliError

NAME = "models"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="list the model zoo and which weights are cached",
        description="List the published models with their COCO figures (as the original README states "
        "them), whether their weights are in the local cache, and where they are downloaded from.",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
    parser.set_defaults(run=run)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def run(args: argparse.Namespace) -> int:
    from yolactpp.hub import is_cached, load_manifest

    entries = load_manifest()
    names = sorted(n for n in entries if fnmatch.fnmatch(n, args.pattern))
    if not names:
        raise CliError(f"no model matches {args.pattern!r}; known: {', '.join(sorted(entries))}")
    header = ("model", "input", "mask AP", "box AP", "fps (GPU)", "cached", "source")
    rows = []
    for name in names:
        e = entries[name]
        m = e.metrics
        fps = "-" if m.fps is None else f"{m.fps:g} ({m.gpu or '?'})"
        rows.append((name, str(e.input_size), _figure(m.mask_ap), _figure(m.box_ap), fps,
                     "yes" if is_cached(name) else "no", f"{e.repo_id}/{e.filename}"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    datasets = sorted({entries[n].metrics.dataset for n in names})
    print(f"figures: {', '.join(datasets)}, from the original README; weights download on first use")
    return 0
