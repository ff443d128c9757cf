"""Training on Ray Train: the same step as one process, and a run that survives a killed worker.

A local Ray instance (2 CPUs, loopback only) runs 2 workers with batch 1 each; the result must
match one process with batch 2 within the tolerance of tests/train/test_distributed.py. The fault
test kills one worker's process (SIGKILL) right after the first checkpoint and checks that Ray
restarts the group from that checkpoint and finishes, losing at most one checkpoint interval.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

try:
    import ray  # CI installs the dev extra, which includes Ray: these tests must run there
except ImportError:  # pragma: no cover
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'yolactpp[ray]')")

import psutil

from tests.train.test_distributed import assert_same_parameters, options
from yolactpp import YolactPP
from yolactpp.integrations.ray.train import run_on_ray
from yolactpp.train.checkpointing import OutputFolderError
from yolactpp.train.shapes import ShapesDataset, make_shapes_dataset


def _paths() -> str:
    """This yolactpp and the repository root (the workers import tests.train.tiny)."""
    root = Path(__file__).resolve().parents[2]
    return os.pathsep.join([str(root / "src"), str(root)])


@pytest.fixture(scope="module")
def ray_train_instance():
    """2 CPUs (one per worker); workers import this yolactpp, register the tiny backbone, use one thread."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=512 * 2**20,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": _paths(), "OMP_NUM_THREADS": "1"},
            "worker_process_setup_hook": "tests.train.tiny.register_tiny",
        },
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_data(tmp_path_factory: pytest.TempPathFactory) -> ShapesDataset:
    return make_shapes_dataset(tmp_path_factory.mktemp("ray_shapes"), 4, seed=11, image_size=(80, 72))


def test_two_ray_workers_match_one_process(
    ray_train_instance, tiny_model: YolactPP, ray_data: ShapesDataset, tmp_path: Path
) -> None:
    model = tiny_model
    data = (ray_data.annotations, ray_data.images)
    single = model.fit(data, None, options(tmp_path / "one", 2))
    ray_opts = options(tmp_path / "two", 1, engine="ray", num_workers=2, storage_path=tmp_path / "storage")
    trained = model.fit(data, None, ray_opts)

    assert trained.model_dir == tmp_path / "two" / "model" and trained.iteration == 2
    assert_same_parameters(single.model_dir, trained.model_dir)
    # Ray holds the checkpoint too, in the project's format.
    assert (tmp_path / "storage" / "two" / "iter_0000002" / "model.safetensors").is_file()
    # The storage now holds a finished run: a new run there is refused unless asked to overwrite.
    with pytest.raises(OutputFolderError, match="overwrite"):
        model.fit(data, None, ray_opts)


def _kill_a_worker_after_checkpoint(run: Path, first: str, seen: dict[str, int]) -> None:
    """Wait until Ray holds checkpoint ``first`` (in its default storage, ``run/ray``), note the last
    logged step, SIGKILL one Ray Train worker."""
    deadline = time.monotonic() + 300
    snapshot = run / "ray" / "checkpoint_manager_snapshot.json"
    while not (snapshot.is_file() and first in snapshot.read_text()):
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    workers = [p for p in psutil.process_iter(["name", "cmdline"])
               if "RayTrainWorker" in (p.info["name"] or "") + " ".join(p.info["cmdline"] or [])]  # fmt: skip
    lines = (run / "metrics.jsonl").read_text().splitlines()
    seen["logged"] = max(json.loads(line)["iteration"] for line in lines)
    seen["killed"] = workers[-1].pid
    os.kill(workers[-1].pid, signal.SIGKILL)


def test_a_killed_worker_restarts_from_the_last_checkpoint(
    ray_train_instance, tiny_model: YolactPP, ray_data: ShapesDataset, tmp_path: Path
) -> None:
    model = tiny_model
    run = tmp_path / "run"
    opts = options(run, 1, iterations=5, checkpoint_every=2, engine="ray", num_workers=2, max_failures=1)
    seen: dict[str, int] = {}
    killer = threading.Thread(target=_kill_a_worker_after_checkpoint, args=(run, "iter_0000002", seen))
    killer.start()
    result = run_on_ray(model, (ray_data.annotations, ray_data.images), None, opts)
    killer.join()

    assert "killed" in seen, "no worker was killed"
    print(f"killed worker pid {seen['killed']} after step {seen['logged']}; last attempt resumed from step "
          f"{result.metrics['resumed_from']} and reached step {result.metrics['iteration']}")  # fmt: skip
    assert result.error is None and result.metrics["iteration"] == 5
    # The last attempt started from a checkpoint no more than one interval before the killed step.
    assert result.metrics["resumed_from"] >= seen["logged"] - opts.checkpoint_every
    assert result.metrics["resumed_from"] in (2, 4)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"
    logged = [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4, 5]
    YolactPP.from_pretrained(run / "model")
