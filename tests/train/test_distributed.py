"""Data-parallel training: 2 processes x batch 1 reach the parameters of 1 process x batch 2.

On the tiny test model (tests/train/tiny.py) with frozen BatchNorm, fine-tuned from its 2 classes
to the 3 shapes classes (so the class-dependent layers start from the seeded re-initialisation).

The processes are spawned here with the gloo backend, as ``torchrun`` would start them (the
trainer only needs an initialised default group). BatchNorm is frozen, so the only difference
from the one-process run is the order of float additions (gradients and loss normalisers summed
over processes): parameters agree within 1e-6 absolute + 1e-5 relative after 2 SGD steps
(measured: 7.5e-9 at most, 62 of 84 tensors bit-identical; summing the normalisers per process
instead of over the group moves parameters by up to 2.5e-2).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from yolactpp import YolactPP
from yolactpp.config import PreprocessConfig
from yolactpp.predict_options import InvalidOptionError
from yolactpp.serialization import read_pretrained_dir
from yolactpp.train.coco_dataset import CocoDataset
from yolactpp.train.loader import make_loader
from yolactpp.train.options import TrainOptions
from yolactpp.train.shapes import ShapesDataset, make_shapes_dataset

#: Parameter agreement between the data-parallel and the one-process run (float32, 2 steps).
RTOL, ATOL = 1e-5, 1e-6


def options(output: Path, batch_size: int, **overrides: object) -> TrainOptions:
    """The smallest run that moves every trained layer: 64 px input, 2 steps at a high rate."""
    values: dict[str, object] = dict(
        output_dir=output, iterations=2, batch_size=batch_size, image_size=64, workers=0, lr=1e-2,
        warmup_iterations=0, checkpoint_every=2, progress=False, seed=3,
    )  # fmt: skip
    values.update(overrides)
    return TrainOptions(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def dp_data(tmp_path_factory: pytest.TempPathFactory) -> ShapesDataset:
    return make_shapes_dataset(tmp_path_factory.mktemp("dp_shapes"), 4, seed=11, image_size=(80, 72))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, model: YolactPP, data: ShapesDataset, opts: TrainOptions) -> None:
    from tests.train.tiny import register_tiny
    from yolactpp.train.distributed import DistributedTrainer

    register_tiny()
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        DistributedTrainer(model, (data.annotations, data.images), None, opts).fit()
    finally:
        dist.destroy_process_group()


def run_group(world: int, model: YolactPP, data: ShapesDataset, opts: TrainOptions) -> None:
    mp.spawn(_worker, args=(world, _free_port(), model, data, opts), nprocs=world, join=True)


def assert_same_parameters(a: Path, b: Path) -> None:
    left, right = read_pretrained_dir(a).state, read_pretrained_dir(b).state
    assert left.keys() == right.keys()
    for key, value in left.items():
        torch.testing.assert_close(right[key], value, rtol=RTOL, atol=ATOL, msg=lambda m, k=key: f"{k}: {m}")


def test_two_processes_match_one_with_the_whole_batch(
    tiny_model: YolactPP, dp_data: ShapesDataset, tmp_path: Path
) -> None:
    start = {k: v.clone() for k, v in tiny_model.network.state_dict().items()}
    single = tiny_model.fit((dp_data.annotations, dp_data.images), None, options(tmp_path / "one", 2))
    run_group(2, tiny_model, dp_data, options(tmp_path / "two", 1))

    assert_same_parameters(single.model_dir, tmp_path / "two" / "model")
    # The steps did something: a backbone weight shared by both runs moved.
    key = next(k for k in start if k.startswith("backbone") and start[k].dim() == 4)
    trained = read_pretrained_dir(single.model_dir).state[key]
    assert not torch.allclose(trained, start[key], rtol=0, atol=1e-6)
    # Only rank 0 wrote: one checkpoint per step, one metrics row per step, with the global loss.
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["iter_0000002"]
    one_log = (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()
    two_log = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert len(two_log) == len(one_log) == 2
    for a, b in zip(one_log, two_log):
        assert json.loads(b)["loss"] == pytest.approx(json.loads(a)["loss"], rel=1e-4)


def test_shards_split_every_global_batch(shapes: ShapesDataset) -> None:
    """Rank r's batch of 2 is slice r of the one-process batch of 4, augmentation included."""
    dataset = CocoDataset(shapes.annotations, shapes.images, PreprocessConfig(size=64))
    whole = islice(make_loader(dataset, 4, seed=2).batches(1), 4)  # crosses into the next epoch
    parts = [make_loader(dataset, 2, seed=2, shard=(rank, 2)).batches(1) for rank in range(2)]
    for (images, targets), (first, first_t), (second, second_t) in zip(whole, *parts):
        torch.testing.assert_close(torch.cat([first, second]), images, rtol=0, atol=0)
        for got, want in zip(first_t + second_t, targets):
            torch.testing.assert_close(got.boxes, want.boxes, rtol=0, atol=0)
    with pytest.raises(Exception, match="shard"):
        make_loader(dataset, 2, shard=(2, 2))


def test_scaling_options_are_checked() -> None:
    with pytest.raises(InvalidOptionError, match="engine='ray' only"):
        TrainOptions(num_workers=2)
    with pytest.raises(InvalidOptionError, match="engine must be one of"):
        TrainOptions(engine="spark")  # type: ignore[arg-type]
    assert TrainOptions(engine="ray", storage_path=Path("/tmp/x")).storage_path == "/tmp/x"


def test_ray_engine_names_the_extra_when_ray_is_missing() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from yolactpp.train.launch import train\n"
        "from yolactpp.train.options import TrainOptions\n"
        "try:\n"
        "    train(None, None, None, TrainOptions(engine='ray', num_workers=2))\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("MissingDependencyError") and "pip install 'yolactpp[ray]'" in out


def test_torchrun_cli_trains_with_rank_0_writing_and_refuses_a_finished_run(
    v1_checkpoint: Path, dp_data: ShapesDataset, tmp_path: Path
) -> None:
    """``torchrun --nproc-per-node 2 -m yolactpp train``: one report, one run folder, a loadable model;
    a second launch on the same folder stops every rank with rank 0's refusal (none left waiting)."""
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
        "-m", "yolactpp", "train", "-m", str(v1_checkpoint), "--train", str(dp_data.annotations),
        "--images", str(dp_data.images), "--iterations", "2", "--batch-size", "1", "--image-size", "64",
        "--workers", "0", "--checkpoint-every", "2", "-q", "-o", str(out),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained 2 iterations") == 1
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["iter_0000002"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert YolactPP.from_pretrained(out / "model").config.class_names == ("circle", "rectangle", "triangle")

    command[command.index("--master-port") + 1] = str(_free_port())
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode != 0
    assert "holds a finished run" in again.stderr and "--overwrite" in again.stderr
