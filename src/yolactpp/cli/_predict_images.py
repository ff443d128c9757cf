"""``yolactpp predict`` on image files: per-image JSON and annotated images, the run's COCO results
(``predictions.json``), optional polygons, masks and CSV; unreadable files reported, not fatal."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.cli._predict_outputs import CocoDataset, detections_table, write_csv
from yolactpp.errors import PredictionFailure

if TYPE_CHECKING:
    from yolactpp.predict_options import PredictOptions

__all__ = ["coco_image_id", "counts", "progress", "report_failure", "run_images"]


def counts(names: list[str]) -> str:
    if not names:
        return "no detections"
    parts = ", ".join(f"{n} {name}" for name, n in Counter(names).most_common())
    return f"{len(names)} detection{'s' if len(names) != 1 else ''} ({parts})"


def coco_image_id(path: Path, position: int) -> int:
    """COCO image id: the file stem when it is a number (COCO file names), else the 1-based position."""
    return int(path.stem) if path.stem.isdigit() else position


def progress(iterable: Any, total: int | None, unit: str, desc: str | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit=unit, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def report_failure(message: str) -> None:
    """One failed input, on stderr (also with --quiet: it is a warning, not progress)."""
    from tqdm import tqdm

    tqdm.write(f"yolactpp predict: skipped {message}", file=sys.stderr)


def run_images(
    model: Any, paths: list[Path], names: list[str], out: Path, args: argparse.Namespace, options: PredictOptions,
    report: bool,
) -> list[str]:
    """Predict and write every image; returns the messages of those that could not be read (each
    also reported on stderr when ``report``). ``predictions.json`` is written even when
    interrupted, with the images finished by then."""
    from tqdm import tqdm

    stream = model.iter_predict((str(p) for p in paths), batch_size=args.batch_size, options=options, on_error="yield")
    bar = progress(stream, len(paths), "image", None, enabled=not args.quiet and len(paths) > 1)
    records: list[dict[str, Any]] = []
    dataset = CocoDataset() if args.save_polygons else None
    tables: list[Any] = []
    failures: list[str] = []
    done = 0
    try:
        for position, (path, name, det) in enumerate(zip(paths, names, bar), start=1):
            if isinstance(det, PredictionFailure):
                failures.append(det.message)
                if report:
                    report_failure(det.message)
                continue
            image_id = coco_image_id(path, position)
            (out / f"{name}.json").write_text(json.dumps({"image_id": image_id, **det.to_dict()}))
            records += det.to_coco(image_id)
            if dataset is not None:
                dataset.add(path, image_id, det)
            if args.save_csv:
                tables.append(detections_table(det, image=str(path), image_id=image_id))
            if not args.no_plot:
                suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
                det.plot().save(out / f"{name}{suffix}", **({"quality": 95} if suffix != ".png" else {}))
            if args.save_masks:
                det.save_masks(out / "masks" / name, prefix="")
            if not args.quiet:
                tqdm.write(f"{path}: {counts(det.class_names)}", file=sys.stdout)
            done += 1
    except KeyboardInterrupt:
        print(
            f"yolactpp predict: interrupted after {done} of {len(paths)} images; "
            f"{out / 'predictions.json'} holds the finished ones",
            file=sys.stderr,
        )
        raise
    finally:  # also when interrupted: the files hold what finished
        (out / "predictions.json").write_text(json.dumps(records))
        if dataset is not None:
            (out / "annotations.json").write_text(json.dumps(dataset.finish(model.class_names, model.config.category_ids)))
        if tables:
            write_csv(tables, out / "detections.csv")
    return failures
