"""The ``yolactpp`` command: ``predict``, ``eval``, ``train``, ``benchmark``, ``models``, ``convert``, ``build-ops``, ``export`` and ``quantize``.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and ``run(args) -> int``;
they import torch and the model only when they run, so ``yolactpp --help`` stays fast. User
mistakes (bad arguments, missing files, unreadable images or checkpoints: every
:class:`~yolactpp.YolactppError`, and ``FileNotFoundError``) end with a one-line message on stderr
and exit code 2, never a traceback; anything else is a bug and keeps its traceback (exit code 1).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from yolactpp.cli import benchmark, build_ops, convert, evaluate, export, models, predict, quantize, train
from yolactpp.cli._common import ArgumentParser, is_user_error, one_line, warnings_above_progress_bars

__all__ = ["build_parser", "main"]

_COMMANDS = (predict, evaluate, train, benchmark, models, convert, build_ops, export, quantize)


def build_parser() -> ArgumentParser:
    """The argument parser of the ``yolactpp`` command."""
    from yolactpp._version import __version__

    parser = ArgumentParser(
        prog="yolactpp",
        description="YOLACT / YOLACT++ instance segmentation: predict, evaluate, train, benchmark, manage weights.",
    )
    parser.add_argument("--version", action="version", version=f"yolactpp {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    subparsers.required = True
    for command in _COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and argument errors (already printed)
        return exit_.code if isinstance(exit_.code, int) else 0
    try:
        with warnings_above_progress_bars():
            return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("yolactpp: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if not is_user_error(exc):
            raise
        print(f"{parser.prog} {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
