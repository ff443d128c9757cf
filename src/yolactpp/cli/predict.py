"""``yolactpp predict``: images, folders, globs and videos -> JSON results and annotated media.

For every image ``<name>.json`` (the ``Detections.to_dict`` form plus ``image_id``) and, unless
``--no-plot``, an annotated ``<name>.<ext>``; all images' COCO result records go to
``predictions.json``. Every video gives ``<name>.jsonl`` (one line per frame) and an annotated
``<name>.mp4``. Outputs land in ``--output`` or the next free ``runs/predict``, ``runs/predict2``...

Live sources (a webcam ``0`` or ``/dev/video0``, ``rtsp://``, ``http(s)://....m3u8``, ...) are read
like videos through :class:`yolactpp.live.LiveStream`, dropping the frames inference cannot keep
up with; ``--max-frames``/``--duration`` bound them and Ctrl-C stops any video or stream cleanly,
with its output files closed and complete.

``--engine ray`` runs the images on Ray Data actors instead and writes one parquet row per image
(:mod:`yolactpp.cli._ray_engine`).

This module holds the parser and the run: which inputs, which engine, the checks before the model
loads. The jobs live beside it: image runs in :mod:`~yolactpp.cli._predict_images`, video and live
runs in :mod:`~yolactpp.cli._predict_video`, the COCO/CSV writers and the output plan in
:mod:`~yolactpp.cli._predict_outputs`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.cli._common import (
    CliError,
    add_model_arguments,
    collect_sources,
    is_video,
    load_model,
    next_run_dir,
    positive_float,
    positive_int,
    predict_options,
    unique_stem,
    unit_float,
)
from yolactpp.cli._predict_images import report_failure, run_images
from yolactpp.cli._predict_outputs import (
    RESULT_STEMS,
    check_outputs,
    planned_outputs,
)
from yolactpp.cli._predict_video import live_name, run_video, split_live
from yolactpp.errors import PredictionFailure, is_item_error

if TYPE_CHECKING:
    pass

NAME = "predict"
ENGINES = ("local", "ray")
_RAY_ONLY = ("address", "concurrency", "threads")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="segment images and videos, write JSON and annotated outputs",
        description="Segment images and videos. Per image: <name>.json (detections with RLE masks) and, "
        "unless --no-plot, an annotated copy; all images' COCO result records go to predictions.json. "
        "Per video: <name>.jsonl (one line per frame) and an annotated <name>.mp4. Outputs go to --output "
        "or the next free runs/predict, runs/predict2, ... under the current folder.",
    )
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE",
        help="image or video files, folders or glob patterns; live sources: a webcam (0, /dev/video0), "
        "rtsp://, rtmp://, udp://, tcp://, srt:// or http(s)://....m3u8 streams",
    )  # fmt: skip
    add_model_arguments(parser)
    group = parser.add_argument_group("detection")
    group.add_argument(
        "--score-threshold", type=unit_float, default=0.15, metavar="S",
        help="keep detections whose final score is above this (default: %(default)s; 0 keeps all)",
    )  # fmt: skip
    group.add_argument(
        "--classes", action="append", metavar="NAMES",
        help="only detect these classes: comma-separated names or 0-based ids, e.g. 'person,traffic light' "
        "(repeatable)",
    )  # fmt: skip
    group.add_argument("--max-detections", type=positive_int, metavar="N", help="at most this many detections per image (default: 100)")
    group.add_argument("--batch-size", type=positive_int, default=1, metavar="N", help="images or frames per forward pass (default: 1)")
    group = parser.add_argument_group("output")
    group.add_argument(
        "-o", "--output", metavar="PATH",
        help="output folder (default: next free runs/predict, runs/predict2, ...); with --engine ray: a .parquet "
        "file, or a folder or URI (s3://...) for a parquet dataset (default: runs/predict*/results.parquet)",
    )  # fmt: skip
    group.add_argument("--no-plot", action="store_true", help="do not write annotated images or videos")
    group.add_argument(
        "--overwrite", action="store_true",
        help="replace result files that exist in the output folder (input files are never replaced)",
    )  # fmt: skip
    group.add_argument("--save-masks", action="store_true", help="also write one PNG per detected mask (images only)")
    group.add_argument(
        "--save-polygons", action="store_true",
        help="images: also write annotations.json, a COCO dataset with polygon masks for labelling tools (CVAT, "
        "Label Studio); videos: add each detection's polygons to the .jsonl lines",
    )  # fmt: skip
    group.add_argument(
        "--save-csv", action="store_true",
        help="also write a table, one row per detection: detections.csv for images, <name>.csv per video",
    )  # fmt: skip
    group.add_argument("-q", "--quiet", action="store_true", help="no per-image lines and no progress bar")
    group = parser.add_argument_group("failures")
    group.add_argument(
        "--strict", action="store_true",
        help="exit with status 2 when any input cannot be read (default: report it on stderr, go on with the "
        "others, and fail only when none can be read)",
    )  # fmt: skip
    group.add_argument(
        "--max-image-pixels", type=positive_int, metavar="N",
        help="Pillow's decompression-bomb limit: images up to N pixels open silently, up to 2N with a warning, "
        "larger ones are refused (default: 89478485)",
    )  # fmt: skip
    group = parser.add_argument_group("videos and live sources")
    group.add_argument(
        "--track", action="store_true",
        help="give each detection a track id that stays with the object across frames (ByteTrack; needs "
        "pip install 'yolactpp[track]')",
    )  # fmt: skip
    group.add_argument("--max-frames", type=positive_int, metavar="N", help="stop each video or stream after N frames")
    group.add_argument("--duration", type=positive_float, metavar="SECONDS", help="stop each video or stream after this many seconds of it")
    group = parser.add_argument_group("engine")
    group.add_argument(
        "--engine", choices=ENGINES, default="local",
        help="local: predict in this process (default); ray: Ray Data model actors writing one parquet row per "
        "image (images only; see docs/ray.md)",
    )  # fmt: skip
    group.add_argument("--address", metavar="ADDRESS", help="Ray cluster to use, e.g. auto or ray://head:10001 (default: start a local one)")
    group.add_argument("--concurrency", type=positive_int, metavar="N", help="model actors (default: as many as the cluster's CPUs or GPUs allow)")
    group.add_argument("--threads", type=positive_int, metavar="N", help="CPUs (torch threads) per model actor (default: 1)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from yolactpp.cli import _ray_engine

        for flag in ("track", "save_polygons", "save_csv", "max_frames", "duration"):
            if getattr(args, flag) not in (None, False):
                raise CliError(f"--{flag.replace('_', '-')} applies to --engine local only")

        return _ray_engine.run(args)
    for name in _RAY_ONLY:
        if getattr(args, name) is not None:
            raise CliError(f"--{name} applies to --engine ray only")
    live, specs = split_live(args.sources)
    sources = collect_sources(specs) if specs else []
    videos = [p for p in sources if is_video(p)]
    images = [p for p in sources if not is_video(p)]
    if args.max_image_pixels is not None:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = args.max_image_pixels
    if (videos or live) and importlib.util.find_spec("av") is None:
        raise CliError("video input needs PyAV: pip install 'yolactpp[video]' (or pip install av)")
    for source in live:  # a missing camera is named before the model loads
        device = f"/dev/video{source.strip()}" if source.strip().isdigit() else source.strip()
        if sys.platform.startswith("linux") and device.startswith("/dev/") and not Path(device).exists():
            raise CliError(f"no webcam {source}: {device} does not exist")
    if args.track and not (videos or live):
        raise CliError("--track applies to videos and live sources")
    for flag, module, extra in (
        (args.track, "trackers", "track"),
        (args.save_csv, "pandas", "pandas"),
        (args.save_polygons, "contourpy", "polygons"),
        (args.save_polygons, "shapely", "polygons"),
    ):
        if flag and importlib.util.find_spec(module) is None:
            raise CliError(f"this option needs {module}: pip install 'yolactpp[{extra}]'")
    out = Path(args.output) if args.output is not None else next_run_dir(Path("runs"), "predict")
    used: set[str] = set(RESULT_STEMS)  # an image called predictions.png gets predictions_2.json
    names = [unique_stem(p.stem, used) for p in images]
    streams = [(str(p), unique_stem(p.stem, used)) for p in videos] + [(s, unique_stem(live_name(s), used)) for s in live]
    check_outputs(out, planned_outputs(out, images, names, [name for _, name in streams], args), sources, args)
    model = load_model(args)
    options = predict_options(args)
    model.iter_predict([], options=options)  # checks the class names against the model before any output

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    start = time.perf_counter()
    total = len(sources) + len(live)
    report = total > 1  # a single input that fails is the error itself (below)
    failures: list[str] = []
    if images:
        failures += run_images(model, images, names, out, args, options, report)
    for source, name in streams:
        try:
            finished = run_video(model, source, name, out, args, options)
        except Exception as exc:
            if not is_item_error(exc):
                raise
            failures.append(PredictionFailure(0, source, exc).message)
            if report:
                report_failure(failures[-1])
            continue
        if not finished:
            print(f"stopped by Ctrl-C; results so far saved to {out}")
            return 130
    if failures and not report:
        raise CliError(failures[0])
    if not args.quiet:
        what = ", ".join(
            f"{n} {kind}{'s' if n != 1 else ''}"
            for n, kind in ((len(images), "image"), (len(videos), "video"), (len(live), "live source"))
            if n
        )
        failed = f" ({len(failures)} could not be read)" if failures else ""
        print(f"{what}{failed} done in {time.perf_counter() - start:.1f} s; results saved to {out}")
    if failures and len(failures) == total:
        raise CliError(f"none of the {total} inputs could be read")
    if failures and args.strict:
        raise CliError(f"{len(failures)} of {total} inputs could not be read (--strict)")
    return 0
