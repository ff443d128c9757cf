"""Throughput of Ray Data batch inference against in-process prediction on the same images.

Both engines do the same work per image: decode the file, predict, build full-size masks and
encode them as COCO RLE result rows (the in-process engine calls the same ``Predictor`` directly).

- in-process: one ``Predictor`` in this process with ``--threads`` torch threads, batches of
  ``--batch-size``;
- Ray: ``predict_dataset`` with ``--actors`` actors of ``--actor-threads`` thread(s) each on a
  local Ray instance of ``actors x actor-threads`` CPUs (loopback only), same batch size. Its
  wall time includes starting the actors and loading the model in each (Ray start-up is shown
  separately), as a real job pays them.

Weights: a checkpoint path, or the deterministic synthetic oracle checkpoint (same shapes and
detection counts as real weights; speed does not depend on the values). Run from the repo root:

    python benchmarks/bench_ray.py --images 24 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import REPO, checkpoint_for, markdown_table  # noqa: E402

IMAGES = [REPO / "tests/data/oracle/images/square_550x550.png", REPO / "tests/data/oracle/images/landscape_1280x720.png"]


def make_images(folder: Path, count: int) -> list[Path]:
    """``count`` different PNGs: flips, crops and resizes of the two test images, alternating."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in IMAGES]
    paths = []
    for i in range(count):
        img = sources[i % 2]
        w, h = img.size
        step = i // 2
        if step % 3 == 1:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif step % 3 == 2:
            img = img.crop((step % 7 * w // 20, step % 5 * h // 20, w - step % 3 * w // 20, h))
        if step >= 3:
            img = img.resize((max(64, w * (10 - step % 5) // 10), max(64, h * (10 - step % 4) // 10)))
        path = folder / f"img_{i:03d}.png"
        img.save(path)
        paths.append(path)
    return paths


def run_in_process(checkpoint: Path, paths: list[Path], threads: int, batch_size: int, options: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from yolactpp.integrations.ray import Predictor

    start = time.perf_counter()
    predictor = Predictor(checkpoint, num_threads=threads, **options)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    rows = 0
    for i in range(0, len(paths), batch_size):
        chunk = paths[i : i + batch_size]
        batch = {"bytes": np.array([p.read_bytes() for p in chunk], dtype=object), "path": np.array([str(p) for p in chunk])}
        rows += predictor(batch).num_rows
    return {"setup": setup, "wall": time.perf_counter() - start, "rows": rows}


def run_ray(checkpoint: Path, folder: Path, actors: int, actor_threads: int, batch_size: int, options: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # local instance on loopback only
    import ray

    from yolactpp.integrations.ray import predict_dataset, read_image_files

    start = time.perf_counter()
    ray.init(address="local", num_cpus=actors * actor_threads, include_dashboard=False, log_to_driver=False,
             logging_level="warning", object_store_memory=512 * 2**20)  # fmt: skip
    ray.data.DataContext.get_current().enable_progress_bars = False
    setup = time.perf_counter() - start
    try:
        start = time.perf_counter()
        ds = read_image_files(str(folder))
        result = predict_dataset(ds, checkpoint, batch_size=batch_size, concurrency=actors, cpus_per_actor=actor_threads, **options)
        rows, errors, ids = 0, 0, set()
        for table in result.iter_batches(batch_format="pyarrow", batch_size=None):
            rows += table.num_rows
            errors += table.num_rows - table.column("error").null_count
            ids.update(table.column("image_id").to_pylist())
        wall = time.perf_counter() - start
        return {"setup": setup, "wall": wall, "rows": rows, "errors": errors, "unique": len(ids)}
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolact_resnet50", help="config of the synthetic weights (default: %(default)s)")
    parser.add_argument("--checkpoint", help="original .pth (default: synthetic oracle weights)")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads in-process (default: %(default)s)")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--actor-threads", type=int, default=1)
    parser.add_argument("--score-threshold", type=float, default=0.15)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the engines this many times; medians reported")
    args = parser.parse_args(argv)

    import torch

    checkpoint = checkpoint_for(args.model, args.checkpoint)
    options = {"score_threshold": args.score_threshold}
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp) / "images", args.images)
        local, remote = [], []
        for _ in range(args.rounds):
            local.append(run_in_process(checkpoint, paths, args.threads, args.batch_size, options))
            remote.append(run_ray(checkpoint, Path(tmp) / "images", args.actors, args.actor_threads, args.batch_size, options))
    assert all(r["rows"] == args.images for r in local + remote), "an engine lost or duplicated rows"
    assert all(r["unique"] == args.images for r in remote), "Ray duplicated rows"
    assert all(r["errors"] == 0 for r in remote), "Ray produced error rows"

    def med(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"# {args.model}, {args.images} images (550x550 and 1280x720 variants), batch {args.batch_size}, "
          f"score > {args.score_threshold}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"median of {args.rounds} round(s)")  # fmt: skip
    base = med(local, "wall")
    ratios = sorted(r["wall"] / l["wall"] for l, r in zip(local, remote))
    rows = [
        ["in-process", f"1 process x {args.threads} threads", f"{med(local, 'setup'):.1f} (model load)",
         f"{base:.1f}", f"{args.images / base:.2f}", "1.00x"],
        ["Ray Data", f"{args.actors} actors x {args.actor_threads} thread(s)", f"{med(remote, 'setup'):.1f} (ray.init)",
         f"{med(remote, 'wall'):.1f}", f"{args.images / med(remote, 'wall'):.2f}", f"{statistics.median(ratios):.2f}x"],
    ]  # fmt: skip
    print(markdown_table(rows, ["engine", "workers", "setup s", "wall s", "images/s", "wall / in-process"]))
    print("# wall: the whole job; Ray's includes starting the actors and loading the model in each. "
          "wall / in-process: median over rounds of the per-round ratio; the ratios, sorted: "
          + ", ".join(f"{r:.2f}x" for r in ratios))  # fmt: skip


if __name__ == "__main__":
    main()
