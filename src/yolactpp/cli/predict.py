"""``yolactpp predict``: images, folders, globs and videos -> JSON results and annotated media.

For every image ``<name>.json`` (the ``Detections.to_dict`` form plus ``image_id``) and, unless
``--no-plot``, an annotated ``<name>.<ext>``; all images' COCO result records go to
``predictions.json``. Every video gives ``<name>.jsonl`` (one line per frame) and an annotated
``<name>.mp4``. Outputs land in ``--output`` or the next free ``runs/predict``, ``runs/predict2``...

``--engine ray`` runs the images on Ray Data actors instead and writes one parquet row per image
(:mod:`yolactpp.cli._ray_engine`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.cli._common import (
    CliError,
    add_model_arguments,
    collect_sources,
    is_video,
    load_model,
    next_run_dir,
    positive_int,
    predict_options,
    unique_stem,
    unit_float,
)

if TYPE_CHECKING:
    from yolactpp.predict_options import PredictOptions

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
    parser.add_argument("sources", nargs="+", metavar="SOURCE", help="image or video files, folders or glob patterns")
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
    group.add_argument("--save-masks", action="store_true", help="also write one PNG per detected mask (images only)")
    group.add_argument("-q", "--quiet", action="store_true", help="no per-image lines and no progress bar")
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


def _counts(names: list[str]) -> str:
    if not names:
        return "no detections"
    parts = ", ".join(f"{n} {name}" for name, n in Counter(names).most_common())
    return f"{len(names)} detection{'s' if len(names) != 1 else ''} ({parts})"


def _image_id(path: Path, position: int) -> int:
    """COCO image id: the file stem when it is a number (COCO file names), else the 1-based position."""
    return int(path.stem) if path.stem.isdigit() else position


def _progress(iterable: Any, total: int | None, unit: str, desc: str | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit=unit, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def _run_images(model: Any, paths: list[Path], names: list[str], out: Path, args: argparse.Namespace, options: PredictOptions) -> None:
    from tqdm import tqdm

    stream = model.iter_predict((str(p) for p in paths), batch_size=args.batch_size, options=options)
    bar = _progress(stream, len(paths), "image", None, enabled=not args.quiet and len(paths) > 1)
    records: list[dict[str, Any]] = []
    for position, (path, name, det) in enumerate(zip(paths, names, bar), start=1):
        image_id = _image_id(path, position)
        (out / f"{name}.json").write_text(json.dumps({"image_id": image_id, **det.to_dict()}))
        records += det.to_coco(image_id)
        if not args.no_plot:
            suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
            det.plot().save(out / f"{name}{suffix}", **({"quality": 95} if suffix != ".png" else {}))
        if args.save_masks:
            det.save_masks(out / "masks" / name, prefix="")
        if not args.quiet:
            tqdm.write(f"{path}: {_counts(det.class_names)}", file=sys.stdout)
    (out / "predictions.json").write_text(json.dumps(records))


def _run_video(model: Any, path: Path, name: str, out: Path, args: argparse.Namespace, options: PredictOptions) -> int:
    import numpy as np

    from yolactpp.video import VideoWriter, probe_video, read_frames

    info = probe_video(path)
    writer = None if args.no_plot else VideoWriter(out / f"{name}.mp4", info.fps, info.width, info.height)
    stream = model.iter_predict(read_frames(path), batch_size=args.batch_size, options=options)
    bar = _progress(stream, info.frames, "frame", path.name, enabled=not args.quiet)
    frames = 0
    try:
        with open(out / f"{name}.jsonl", "w") as lines:
            for index, det in enumerate(bar):
                record = det.to_dict()
                record.pop("path")
                lines.write(json.dumps({"frame": index, "time": float(index / info.fps), **record}) + "\n")
                if writer is not None:
                    writer.write(np.asarray(det.plot()))
                frames += 1
    finally:
        if writer is not None:
            writer.close()
    if not args.quiet:
        print(f"{path}: {frames} frames")
    return frames


def run(args: argparse.Namespace) -> int:
    if args.engine == "ray":
        from yolactpp.cli import _ray_engine

        return _ray_engine.run(args)
    for name in _RAY_ONLY:
        if getattr(args, name) is not None:
            raise CliError(f"--{name} applies to --engine ray only")
    sources = collect_sources(args.sources)
    videos = [p for p in sources if is_video(p)]
    images = [p for p in sources if not is_video(p)]
    if videos and importlib.util.find_spec("av") is None:
        raise CliError("video input needs PyAV: pip install 'yolactpp[video]' (or pip install av)")
    model = load_model(args)
    options = predict_options(args)
    model.iter_predict([], options=options)  # checks the class names against the model before any output

    out = Path(args.output) if args.output is not None else next_run_dir(Path("runs"), "predict")
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    start = time.perf_counter()
    if images:
        names = [unique_stem(p.stem, used) for p in images]
        _run_images(model, images, names, out, args, options)
    for path in videos:
        _run_video(model, path, unique_stem(path.stem, used), out, args, options)
    if not args.quiet:
        what = ", ".join(
            f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in ((len(images), "image"), (len(videos), "video")) if n
        )
        print(f"{what} done in {time.perf_counter() - start:.1f} s; results saved to {out}")
    return 0
