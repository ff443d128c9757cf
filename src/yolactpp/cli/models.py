"""``yolactpp models``: the model zoo and which weights are already downloaded.

Uses ``yolactpp.hub.load_manifest()`` and ``yolactpp.hub.is_cached(name)``, imported when the
command runs.
"""

from __future__ import annotations

import argparse
import fnmatch
from collections.abc import Mapping
from typing import Any

from yolactpp.cli._common import CliError, zoo_api

NAME = "models"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="list the model zoo and which weights are cached",
        description="List the models of the zoo manifest, whether their weights are in the local cache, "
        "and where they are downloaded from.",
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
    parser.set_defaults(run=run)


def _entries(manifest: Any) -> Mapping[str, Any]:
    """Name -> entry, from a ``{name: entry}`` manifest (optionally under ``"models"``) or a list."""
    if isinstance(manifest, Mapping):
        inner = manifest.get("models")
        return inner if isinstance(inner, Mapping) else manifest
    return {str(getattr(entry, "name", entry)): entry for entry in manifest}


def _source(entry: Any) -> str:
    def get(key: str) -> Any:
        return entry.get(key) if isinstance(entry, Mapping) else getattr(entry, key, None)

    repo = get("repo_id") or get("repo")
    filename = get("filename")
    return "/".join(str(part) for part in (repo, filename) if part) or "-"


def run(args: argparse.Namespace) -> int:
    load_manifest = zoo_api("yolactpp.hub", "load_manifest")
    is_cached = zoo_api("yolactpp.hub", "is_cached")
    entries = _entries(load_manifest())
    names = sorted(n for n in entries if fnmatch.fnmatch(n, args.pattern))
    if not names:
        raise CliError(f"no model matches {args.pattern!r}; known: {', '.join(sorted(entries))}")
    header = ("model", "cached", "source")
    rows = [(name, "yes" if is_cached(name) else "no", _source(entries[name])) for name in names]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
