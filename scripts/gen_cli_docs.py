"""Keep the ``--help`` blocks of docs/cli.md equal to what the command prints.

A block in docs/cli.md that starts with ``$ yolactpp [SUBCOMMAND] --help`` inside a ```` ```text ````
fence is replaced by the real help text (argparse wrapped at 80 columns). ``tests/test_docs.py``
fails when a block is stale.

    python scripts/gen_cli_docs.py          # rewrite docs/cli.md in place
    python scripts/gen_cli_docs.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
_BLOCK = re.compile(r"```text\n\$ yolactpp(?P<args>(?: [\w-]+)*) --help\n(?P<body>.*?)```", re.S)


def help_text(args: list[str]) -> str:
    """What ``yolactpp ARGS --help`` prints, at 80 columns."""
    from yolactpp.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "80"
    try:
        parser = build_parser()
        if args:
            subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = subparsers.choices[args[0]]
        return parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def render(text: str) -> str:
    """``text`` with every help block replaced by the current help."""

    def replace(match: re.Match[str]) -> str:
        args = match.group("args").split()
        return f"```text\n$ yolactpp{match.group('args')} --help\n{help_text(args)}```"

    return _BLOCK.sub(replace, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether docs/cli.md is stale")
    args = parser.parse_args()
    current = DOC.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        print("docs/cli.md is stale" if fresh != current else "docs/cli.md is up to date")
        return int(fresh != current)
    DOC.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
