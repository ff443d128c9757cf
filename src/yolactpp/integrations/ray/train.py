"""Fine-tuning on Ray Train: ``TrainOptions(engine="ray", num_workers=N)`` (``yolactpp train --engine ray``).

A ``TorchTrainer`` starts ``num_workers`` workers (gloo on CPUs, NCCL with ``use_gpu``); each runs
:class:`~yolactpp.train.distributed.DistributedTrainer` on its slice of every batch. Rank 0 writes
the usual run folder (``output_dir``: checkpoints, metrics, the final model) and every checkpoint is
also reported to Ray Train, which copies it to ``storage_path/<run name>`` with the metrics. When a
worker is lost, Ray restarts the group (``FailureConfig(max_failures)``) and the workers resume from
the last checkpoint Ray holds, so at most one checkpoint interval of work is repeated.

The output folder is written by rank 0's machine: on one machine (or a shared filesystem) it is
complete; otherwise the final model is taken from Ray's last checkpoint into ``output_dir/model``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.errors import MissingDependencyError
from yolactpp.train.checkpointing import OutputFolderError, RunFolder
from yolactpp.train.distributed import DistributedTrainer, ProcessGroup
from yolactpp.train.options import TrainOptions
from yolactpp.train.trainer import DataSource, TrainResult

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

try:
    import pyarrow.fs
    import ray
    import ray.train
    import ray.train.torch
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingDependencyError(
        f"training on Ray needs Ray Train, which is not installed ({exc}): "
        "pip install 'yolactpp[ray]'  (or: pip install 'ray[train]')"
    ) from exc

__all__ = ["RayTrainer", "fit_on_ray", "run_on_ray", "storage_location"]

#: The Ray run's name when ``storage_path`` is left to its default (``output_dir/ray``).
_DEFAULT_RUN_NAME = "ray"


def storage_location(options: TrainOptions) -> tuple[str, str]:
    """``(storage_path, run name)`` of a Ray run: the given storage path and the output folder's
    name, or ``output_dir`` itself and ``"ray"``."""
    output = Path(options.output_dir).resolve()
    if options.storage_path is None:
        return str(output), _DEFAULT_RUN_NAME
    storage = str(options.storage_path)
    if "://" not in storage:
        storage = str(Path(storage).resolve())
    return storage, output.name


def _prepare_storage(options: TrainOptions) -> None:
    """Refuse a storage location that holds an earlier run unless resuming or overwriting (then remove it)."""
    storage, name = storage_location(options)
    filesystem, root = pyarrow.fs.FileSystem.from_uri(storage)
    path = f"{root.rstrip('/')}/{name}"
    if filesystem.get_file_info(path).type == pyarrow.fs.FileType.NotFound or options.resume:
        return
    if not options.overwrite:
        raise OutputFolderError(
            f"Ray storage {storage}/{name} already holds a run; pass overwrite (--overwrite) to replace it or "
            "resume (--resume) to continue it"
        )
    filesystem.delete_dir(path)


class RayTrainer(DistributedTrainer):
    """A Ray Train worker's trainer: reports metrics every ``log_every`` steps and each checkpoint."""

    resumed_from = 0

    def _prepare_folder(self) -> Any:
        checkpoint = super()._prepare_folder()
        self.resumed_from = 0 if checkpoint is None else checkpoint.iteration
        return checkpoint

    def _iteration_done(self, iteration: int, values: dict[str, float], checkpoint: Any) -> None:
        options = self.options
        saved = iteration % options.checkpoint_every == 0 or iteration == options.iterations
        if not saved and iteration % options.log_every != 0:
            return
        metrics = {"iteration": iteration, "resumed_from": self.resumed_from, **values}
        if not saved:
            ray.train.report(metrics)
            return
        # Every rank reports (Ray waits for all of them); rank 0 hands over the checkpoint.
        ray.train.report(
            metrics,
            checkpoint=None if checkpoint is None else ray.train.Checkpoint.from_directory(str(checkpoint.path)),
            checkpoint_dir_name=f"iter_{iteration:07d}",
            delete_local_checkpoint_after_upload=False,
        )


def _restore(folder: RunFolder, checkpoint: ray.train.Checkpoint, options: TrainOptions) -> None:
    """Put Ray's checkpoint into the run folder unless it is there (a worker on another machine)."""
    with checkpoint.as_directory() as source:
        name = Path(checkpoint.path).name
        target = folder.checkpoints / name
        if not target.is_dir():
            folder.checkpoints.mkdir(parents=True, exist_ok=True)
            shutil.copytree(source, folder.checkpoints / f".{name}.partial")
            os.replace(folder.checkpoints / f".{name}.partial", target)
    if folder.read_record() is None:
        folder.write_record("running", 0, options.to_dict())


def _worker_loop(config: dict[str, Any]) -> None:
    """What each Ray Train worker runs."""
    context = ray.train.get_context()
    options: TrainOptions = config["options"]
    restart = ray.train.get_checkpoint()
    if restart is not None:  # a restart after a lost worker, or a resumed Ray run
        if context.get_world_rank() == 0:
            _restore(RunFolder(options.output_dir), restart, options)
        options = dataclasses.replace(options, resume=True, overwrite=False)
    elif not options.resume:
        # The driver checked and emptied the folder; a restart before the first checkpoint starts afresh.
        options = dataclasses.replace(options, overwrite=True)
    device = ray.train.torch.get_device()
    group = ProcessGroup.current(device)
    model = ray.get(config["model"])
    RayTrainer(model, config["train_data"], config["val_data"], options, group=group).fit()


def run_on_ray(
    model: YolactPP, train_data: DataSource, val_data: DataSource | None, options: TrainOptions
) -> ray.train.Result:
    """Train ``model`` with ``options.num_workers`` Ray Train workers; Ray's result (its ``metrics``:
    the last step's losses, ``iteration`` and ``resumed_from``, the step the last restart began at).

    Connects to the Ray instance this process has joined, or starts a local one. The run folder and
    the storage location are checked here first (see :class:`~yolactpp.train.checkpointing.RunFolder`).
    """
    output = Path(options.output_dir).resolve()
    options = dataclasses.replace(options, output_dir=output)
    # The driver decides about the folders once, so a refusal is one clear error, not a retried worker failure.
    RunFolder(output).prepare(options.to_dict(), resume=options.resume, overwrite=options.overwrite)
    _prepare_storage(options)
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    storage, name = storage_location(options)
    trainer = ray.train.torch.TorchTrainer(
        _worker_loop,
        train_loop_config={"options": options, "model": ray.put(model), "train_data": train_data, "val_data": val_data},
        scaling_config=ray.train.ScalingConfig(num_workers=options.num_workers, use_gpu=options.use_gpu),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=options.max_failures),
        ),
    )
    result = trainer.fit()
    _copy_final_model(RunFolder(output), result)
    return result


def _copy_final_model(folder: RunFolder, result: ray.train.Result) -> None:
    """Take the final model from Ray's last checkpoint when rank 0 wrote it on another machine."""
    if not (folder.model / "config.json").is_file() and result.checkpoint is not None:
        with result.checkpoint.as_directory() as last:
            folder.model.mkdir(parents=True, exist_ok=True)
            for file in ("config.json", "model.safetensors"):
                shutil.copy2(Path(last) / file, folder.model / file)


def fit_on_ray(
    model: YolactPP, train_data: DataSource, val_data: DataSource | None, options: TrainOptions
) -> TrainResult:
    """:func:`run_on_ray`, returning the trained model loaded from the run folder as a local run
    does (``validation`` is in the metrics log, not returned)."""
    result = run_on_ray(model, train_data, val_data, options)
    folder = RunFolder(Path(options.output_dir).resolve())
    trained = type(model).from_pretrained(folder.model)
    iteration = int(result.metrics.get("iteration", options.iterations)) if result.metrics else options.iterations
    return TrainResult(trained.eval(), folder.root, folder.model, iteration, None)
