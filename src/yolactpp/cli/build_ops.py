"""``yolactpp build-ops``: compile the native ops for the torch in this environment, or report them (``--check``)."""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from typing import Any

NAME = "build-ops"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="build the native ops (DCN, FastNMS) for this torch, or check which are loaded",
        description="Compile the native deform_conv2d and fast_nms kernels for the torch installed here "
        "into a per-torch-version cache (once per torch version; needs a C++ compiler, and nvcc for the "
        "CUDA kernels). Installs that came without them (a plain `pip install` builds in isolation, "
        "without torch) otherwise run the slower fallbacks. Exit 0 on success, 1 with the reason.",
    )
    parser.add_argument("--check", action="store_true", help="only report which backend each op uses; build nothing")
    parser.add_argument("--force", action="store_true", help="rebuild from scratch (clear this torch's cache folder)")
    parser.add_argument("--verbose", action="store_true", help="show the compiler commands")
    parser.set_defaults(run=run)


def _say(message: str) -> None:
    print(f"yolactpp {NAME}: {message}", flush=True)


def _report() -> bool:
    """Print one line per op and device; whether the native library is loaded."""
    from yolactpp.ops import _loader, backend_info

    infos = backend_info()
    for info in infos:
        print(f"  {info.op:<14} {info.device:<5} {info.backend:<12} {info.reason}")
    return _loader.native_available()


def _summary() -> str:
    from yolactpp.ops import backend_info

    return ", ".join(f"{i.op} {i.device} {i.backend}" for i in backend_info())


def _ticker(stop: threading.Event, start: float) -> None:
    """A progress line every 15 s: compiling prints nothing until it is done."""
    while not stop.wait(15):
        _say(f"still compiling ({time.monotonic() - start:.0f} s)")


def run(args: argparse.Namespace) -> int:
    import torch

    from yolactpp.ops import _build, _library

    if args.check:
        _say(f"torch {torch.__version__} (CUDA {torch.version.cuda or 'none'}), build cache {_library.build_dir()}")
        loaded = _report()
        _say("native ops loaded" if loaded else "native ops NOT loaded; run `yolactpp build-ops` to build them")
        return 0 if loaded else 1
    if args.force:
        shutil.rmtree(_library.build_dir(), ignore_errors=True)
    start = time.monotonic()
    stop = threading.Event()
    ticker = threading.Thread(target=_ticker, args=(stop, start), daemon=True)
    ticker.start()
    try:
        path = _build.build(verbose=args.verbose, say=_say)
    except _build.BuildFailed as exc:
        print(f"yolactpp {NAME}: error: native ops NOT built: {exc}", file=sys.stderr)
        return 1
    finally:
        stop.set()
    _say(f"native ops built in {time.monotonic() - start:.0f} s: {path}")
    _say(_summary())
    return 0
