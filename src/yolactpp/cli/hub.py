"""``yolactpp models`` and ``yolactpp convert``: the model zoo and the weight converter.

Both call APIs of the model-zoo code (``yolactpp.hub.load_manifest``/``is_cached`` and
``yolactpp.convert``), imported only when the command runs.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from yolactpp.cli._common import CliError


def _zoo_api(module: str, name: str) -> Any:
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise CliError(f"this yolactpp build has no model zoo ({module}.{name} is missing)") from None
    return obj


def _manifest_entries(manifest: Any) -> Mapping[str, Any]:
    if isinstance(manifest, Mapping):
        inner = manifest.get("models")
        return inner if isinstance(inner, Mapping) else manifest
    return {str(getattr(entry, "name", entry)): entry for entry in manifest}


def _source(entry: Any) -> str:
    get = entry.get if isinstance(entry, Mapping) else lambda key: getattr(entry, key, None)
    repo = get("repo_id") or get("repo")
    filename = get("filename")
    return "/".join(str(part) for part in (repo, filename) if part) or "-"


class models:
    """``yolactpp models``: list the zoo and what is downloaded already."""

    NAME = "models"

    @staticmethod
    def add_parser(subparsers: Any) -> None:
        parser = subparsers.add_parser(
            models.NAME,
            help="list the model zoo and which weights are cached",
            description="List the models of the zoo manifest, whether their weights are in the local cache, "
            "and where they are downloaded from.",
        )
        parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
        parser.set_defaults(run=models.run)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        load_manifest = _zoo_api("yolactpp.hub", "load_manifest")
        is_cached = _zoo_api("yolactpp.hub", "is_cached")
        entries = _manifest_entries(load_manifest())
        names = sorted(n for n in entries if fnmatch.fnmatch(n, args.pattern))
        if not names:
            raise CliError(f"no model matches {args.pattern!r}; known: {', '.join(sorted(entries))}")
        rows = [(name, "yes" if is_cached(name) else "no", _source(entries[name])) for name in names]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(("model", "cached", "source"))]
        for row in [("model", "cached", "source"), *rows]:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        return 0


class convert:
    """``yolactpp convert``: an original ``.pth`` file -> the library's own format."""

    NAME = "convert"

    @staticmethod
    def add_parser(subparsers: Any) -> None:
        parser = subparsers.add_parser(
            convert.NAME,
            help="convert an original .pth checkpoint to yolactpp's own format",
            description="Convert an original YOLACT/YOLACT++ .pth release file into a folder that "
            "YolactPP.from_pretrained loads (config.json + weights).",
        )
        parser.add_argument("source", help="original checkpoint, e.g. yolact_plus_base_54_800000.pth")
        parser.add_argument("output_dir", type=Path, help="folder to write")
        parser.add_argument("--config", metavar="NAME", help="model config name, when it cannot be inferred from the file name")
        parser.set_defaults(run=convert.run)

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        package = importlib.import_module("yolactpp")
        convert_fn = getattr(package, "convert", None)
        if convert_fn is not None and not callable(convert_fn):  # the module, if it is not re-exported
            convert_fn = getattr(convert_fn, "convert", None)
        if convert_fn is None:
            convert_fn = _zoo_api("yolactpp.convert", "convert")
        if not Path(args.source).is_file():
            raise FileNotFoundError(f"checkpoint file not found: {args.source}")
        result = convert_fn(args.source, args.output_dir, config=args.config)
        print(f"converted {args.source} -> {result if result is not None else args.output_dir}")
        return 0
