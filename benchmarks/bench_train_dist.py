"""Data-parallel training throughput: images/s with 1 and 2 processes, and an 8-GPU estimate.

Each process runs :class:`~yolactpp.train.distributed.DistributedTrainer` (gloo on the CPU, one
torch thread, ``--batch`` images per step) as ``torchrun`` would; the speed is taken from the run's
metrics log (elapsed time per step, after ``--warmup`` steps; loading and checkpoints excluded).
The gradient all-reduce is timed on its own (same bytes, same backend), so a step splits into
compute and communication, and the script prints what N devices would give::

    images/s(N) = N * batch / (compute per step + exposed all-reduce)

with the all-reduce of a ring (2 (N-1)/N x gradient bytes over the link) fully exposed (an upper
bound on the cost: DDP overlaps it with the backward pass). For GPUs, give the measured 1-GPU step
time (``--gpu-step-s``) and the link's bus bandwidth (``--link-gbps``, GB/s; NVLink 4 on H100 is
~ 450 per direction, PCIe 4 x16 ~ 25).

Caveat: this machine has 2 CPU cores shared with other jobs; 2 processes at one thread each use
both cores, so the 2-process figure is the best case for a 2-core box, and the timings are noisy.

    python benchmarks/bench_train_dist.py [--model yolact_resnet50] [--size 192] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from _common import checkpoint_for, markdown_table


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _train(rank: int, world: int, port: int, weights: str, data: tuple[str, str], opts: object) -> None:
    from yolactpp import YolactPP
    from yolactpp.train.distributed import DistributedTrainer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        DistributedTrainer(YolactPP.from_pretrained(weights), data, None, opts).fit()  # type: ignore[arg-type]
    finally:
        dist.destroy_process_group()


def _allreduce(rank: int, world: int, port: int, numel: int, repeats: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        grads = torch.ones(numel)
        dist.all_reduce(grads)  # connect
        start = time.perf_counter()
        for _ in range(repeats):
            dist.all_reduce(grads)
        if rank == 0:
            Path(out).write_text(str((time.perf_counter() - start) / repeats))
    finally:
        dist.destroy_process_group()


def _images_per_s(run: Path, warmup: int, images_per_step: int) -> tuple[float, float]:
    times = [json.loads(line)["time"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    per_step = (times[-1] - times[warmup - 1]) / (len(times) - warmup)
    return images_per_step / per_step, per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="yolact_resnet50")
    parser.add_argument("--weights", help="model folder or .pth (default: the test oracle's synthetic weights)")
    parser.add_argument("--size", type=int, default=192, help="input size in px (default: 192)")
    parser.add_argument("--batch", type=int, default=1, help="images per process and step (default: 1)")
    parser.add_argument("--steps", type=int, default=6, help="steps per run (default: 6)")
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing (default: 2)")
    parser.add_argument("--gpu-step-s", type=float, help="measured 1-GPU step time (s) for the 8-GPU estimate")
    parser.add_argument("--link-gbps", type=float, default=450.0, help="GPU link bus bandwidth, GB/s (default: 450)")
    args = parser.parse_args()

    from yolactpp import YolactPP
    from yolactpp.train.options import TrainOptions
    from yolactpp.train.shapes import make_shapes_dataset

    weights = str(checkpoint_for(args.model, args.weights))
    model = YolactPP.from_pretrained(weights)
    grad_numel = sum(p.numel() for p in model.network.parameters() if p.requires_grad)
    root = Path(tempfile.mkdtemp(prefix="bench_train_dist_"))
    shapes = make_shapes_dataset(root / "data", 16, seed=0, image_size=(args.size, args.size))
    data = (str(shapes.annotations), str(shapes.images))

    rows: list[list[str]] = []
    steps: dict[int, float] = {}
    speeds: dict[int, float] = {}
    for world in (1, 2):
        run = root / f"run{world}"
        opts = TrainOptions(output_dir=run, iterations=args.steps, batch_size=args.batch, image_size=args.size,
                            workers=0, checkpoint_every=10**6, progress=False, warmup_iterations=0)  # fmt: skip
        mp.spawn(_train, args=(world, _port(), weights, data, opts), nprocs=world, join=True)
        speed, per_step = _images_per_s(run, args.warmup, args.batch * world)
        steps[world] = per_step
        speeds[world] = speed
        rows.append(
            [str(world), f"{args.batch * world}", f"{per_step:.3f}", f"{speed:.2f}", f"{speed / speeds[1]:.2f}x"]
        )
    out = root / "allreduce.txt"
    mp.spawn(_allreduce, args=(2, _port(), grad_numel, 5, str(out)), nprocs=2, join=True)
    allreduce = float(out.read_text())

    print(f"{args.model} at {args.size} px, batch {args.batch} per process, float32, 1 thread per process, gloo; "
          f"{args.steps} steps, {args.warmup} left out; 2 shared CPU cores")  # fmt: skip
    print(markdown_table(rows, ["processes", "images/step", "s/step", "images/s", "vs 1"]))
    grad_mb = grad_numel * 4 / 1e6
    print(f"\ngradients: {grad_numel:,} values ({grad_mb:.0f} MB); gloo all-reduce between 2 processes: {allreduce:.3f} s "
          f"= {allreduce / steps[2]:.0%} of the 2-process step")  # fmt: skip
    compute = steps[1]
    est = []
    for n in (1, 2, 8):
        ring = allreduce * (n - 1) * 2 / n if n > 1 else 0.0  # a ring moves 2(N-1)/N x the bytes; N = 2 measured
        est.append(["CPU processes (this all-reduce)", str(n), f"{n * args.batch / (compute + ring):.2f}"])
    if args.gpu_step_s is not None:
        for n in (1, 8):
            ring = 0.0 if n == 1 else 2 * (n - 1) / n * grad_mb / 1e3 / args.link_gbps
            est.append(
                [f"GPUs ({args.link_gbps:.0f} GB/s link)", str(n), f"{n * args.batch / (args.gpu_step_s + ring):.1f}"]
            )
    print("\nestimate, all-reduce fully exposed (upper bound on its cost):")
    print(markdown_table(est, ["devices", "N", "images/s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
