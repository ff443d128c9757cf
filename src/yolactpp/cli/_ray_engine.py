"""``yolactpp predict --engine ray``: the images go through Ray Data model actors into parquet.

Sources are local files, folders and globs (checked here, as for the local engine) or URIs Ray
Data reads (``s3://bucket/images/``). The output is one ``.parquet`` file written by this process
as results stream in, or, for a folder or URI, a parquet dataset written by the cluster. A local
Ray instance (listening on loopback only) is started unless ``--address`` names a cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp._facts import IMAGE_SUFFIXES, is_url
from yolactpp.cli._common import (
    CliError,
    collect_sources,
    is_video,
    next_run_dir,
    predict_options,
    read_class_names,
)

if TYPE_CHECKING:
    from yolactpp.predict_options import PredictOptions

#: Ray uses the loopback address as the node address when this is "0" (a one-machine cluster).
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _sources(specs: list[str]) -> list[str]:
    """URIs as given; local files, folders and globs resolved to absolute image paths."""
    uris = [s for s in specs if is_url(s)]
    local = [s for s in specs if not is_url(s)]
    paths = collect_sources(local) if local else []
    videos = [p for p in paths if is_video(p)]
    if videos:
        raise CliError(f"--engine ray takes images only; got video {videos[0]} (use the local engine for videos)")
    return uris + [str(p.resolve()) for p in paths]


def _output(args: argparse.Namespace) -> str:
    if args.output is None:
        return str(next_run_dir(Path("runs"), "predict") / "results.parquet")
    return str(args.output)


def _require_ray() -> None:
    """Fail with the message naming the ``ray`` extra when Ray is not installed."""
    try:
        from yolactpp.integrations import ray as _  # noqa: F401  (first: its message names the extra)
    except ImportError as exc:
        raise CliError(str(exc)) from None


@contextmanager
def _ray_session(address: str | None, quiet: bool) -> Iterator[None]:
    """Connect to ``address`` or start a local instance; disconnect at the end (an instance this
    process had already joined is left as it is)."""
    loaded = sys.modules.get("ray")
    already = loaded is not None and loaded.is_initialized()
    if not already and address is None:
        os.environ.setdefault(_LOOPBACK_ENV, "0")
    _require_ray()
    import ray
    import ray.data

    if already:
        yield
        return
    quiet_logs: dict[str, Any] = {"logging_level": "warning", "log_to_driver": False} if quiet else {}
    ray.init(address=address or "local", include_dashboard=False, **quiet_logs)
    if quiet:  # Ray Data logs its progress through its own logger
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def _check_model(args: argparse.Namespace, options: PredictOptions) -> None:
    """Load the model and check the options here, before any actor starts: a bad checkpoint, config
    or class name then raises its own error type (one line, exit 2) instead of killing the actors,
    and any error the actors still raise is a bug (traceback)."""
    from yolactpp.loading import is_exported_file, load

    dtype = None if is_exported_file(args.model) and args.dtype == "float32" else args.dtype
    load(args.model, config=args.config, class_names=read_class_names(args.class_names), dtype=dtype).predict([], options)


def _write_parquet_file(results: Any, path: Path) -> tuple[int, list[tuple[str, str]], int]:
    """Stream the result rows into one parquet file (in place only once complete); returns
    (rows, [(image, error)], detections)."""
    import pyarrow.parquet as pq

    from yolactpp.integrations.ray import RESULT_SCHEMA

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    rows, detections, errors = 0, 0, []
    try:
        with pq.ParquetWriter(partial, RESULT_SCHEMA) as writer:
            for table in results.iter_batches(batch_format="pyarrow", batch_size=None):
                table = table.select(RESULT_SCHEMA.names).cast(RESULT_SCHEMA)
                writer.write_table(table)
                rows += table.num_rows
                columns = table.select(["image_id", "num_detections", "error"]).to_pydict()
                detections += sum(n for n in columns["num_detections"] if n is not None)
                errors += [(i, e) for i, e in zip(columns["image_id"], columns["error"]) if e is not None]
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return rows, errors, detections


def run(args: argparse.Namespace) -> int:
    """Predict ``args.sources`` on Ray and write the result rows (see the module docs)."""
    if args.save_masks:
        raise CliError("--save-masks is not available with --engine ray (the results hold every mask as COCO RLE)")
    if args.max_image_pixels is not None:
        raise CliError("--max-image-pixels applies to --engine local only (Ray actors keep Pillow's limit)")
    sources = _sources(args.sources)
    output = _output(args)
    options = predict_options(args)
    device = args.device
    num_gpus = 1 if device is not None and device.startswith("cuda") else 0
    start = time.perf_counter()
    _require_ray()  # before the model is loaded: a missing extra is the first thing to fix
    _check_model(args, options)
    with _ray_session(args.address, args.quiet):
        from yolactpp.integrations.ray import predict_dataset, read_image_files

        extensions = [s.lstrip(".") for s in IMAGE_SUFFIXES]
        dataset = read_image_files(sources, file_extensions=extensions if any(is_url(s) for s in sources) else None)
        results = predict_dataset(
            dataset,
            args.model,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            cpus_per_actor=args.threads or 1,
            num_gpus=num_gpus,
            config=args.config,
            class_names=read_class_names(args.class_names),
            device=device,
            dtype=args.dtype,
            options=options,
        )
        if output.endswith(".parquet") and not is_url(output):
            summary: tuple[int, list[tuple[str, str]], int] | None = _write_parquet_file(results, Path(output))
        else:
            results.write_parquet(output)
            summary = None
    elapsed = time.perf_counter() - start
    if summary is None:
        if not args.quiet:
            print(f"done in {elapsed:.1f} s; results saved to {output}")
        return 0
    rows, errors, detections = summary
    for _, error in errors:  # each error names its image
        print(f"yolactpp predict: skipped: {error}", file=sys.stderr)
    if not args.quiet:
        failed = f", {len(errors)} unreadable (rows with an error)" if errors else ""
        print(f"{rows} image{'s' if rows != 1 else ''}{failed}, {detections} detections in {elapsed:.1f} s; "
              f"results saved to {output}")  # fmt: skip
    if errors and len(errors) == rows:
        raise CliError(f"none of the {rows} images could be read")
    if errors and args.strict:
        raise CliError(f"{len(errors)} of {rows} images could not be read (--strict)")
    return 0
