"""``Trainer``: fine-tune a model on COCO-format data (what ``YolactPP.fit`` and ``yolactpp train`` run).

One run: read and validate the data, retarget the model to the dataset's classes
(:mod:`~yolactpp.train.initialize`), then SGD with warm-up and step decay
(:mod:`~yolactpp.train.schedule`) over reproducible batches, writing checkpoints, metrics and
validation AP into the output folder (:mod:`~yolactpp.train.checkpointing`,
:mod:`~yolactpp.train.metrics`). A stopped run resumes from its last checkpoint and repeats the
uninterrupted run's losses: the schedule is a function of the iteration, the batches of
``(seed, iteration)``, and the optimizer, the loss's random generator and the semantic head are saved.

For a distributed wrapper: :mod:`~yolactpp.train.step` holds the step itself; ``is_main`` gates
every write (checkpoints, logs, validation) and :meth:`Trainer.make_loader` is the sampler hook.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from yolactpp.builder import build_network
from yolactpp.checkpoint import CheckpointError
from yolactpp.config import ModelConfig, PreprocessConfig
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError
from yolactpp.evaluate import CocoEvalResult, evaluate_coco
from yolactpp.network import YolactNetwork
from yolactpp.serialization import network_state
from yolactpp.train.checkpointing import Checkpoint, RunFolder
from yolactpp.train.coco_dataset import CocoDataset
from yolactpp.train.initialize import (
    fine_tune_network,
    network_from_backbone,
    set_train_mode,
    training_config,
    xavier_init,
)
from yolactpp.train.loader import SampleLoader, make_loader
from yolactpp.train.loss_config import LossConfig
from yolactpp.train.metrics import MetricsLog, plot_curves
from yolactpp.train.options import TrainOptions
from yolactpp.train.schedule import learning_rate, set_learning_rate
from yolactpp.train.semantic import SemanticHead
from yolactpp.train.step import apply_gradients, check_finite, forward_losses

if TYPE_CHECKING:
    from yolactpp.model import YolactPP
    from yolactpp.train.targets import ImageTargets

__all__ = ["DataSource", "TrainResult", "Trainer"]

#: Training or validation data: a :class:`CocoDataset`, or ``(annotations JSON, image folder)``.
DataSource = CocoDataset | tuple["str | os.PathLike[str]", "str | os.PathLike[str]"]


@dataclass(frozen=True)
class TrainResult:
    """What a finished run leaves: the trained ``model`` (in eval mode), the ``output_dir``, the
    final ``model_dir`` (``from_pretrained`` loads it), the ``iteration`` reached, and the last
    validation (``None`` without validation data)."""

    model: YolactPP
    output_dir: Path
    model_dir: Path
    iteration: int
    validation: CocoEvalResult | None


def _paths(data: DataSource, what: str) -> tuple[Path, Path]:
    if isinstance(data, CocoDataset):
        return data.annotation_file, data.instances.image_dir
    if isinstance(data, tuple) and len(data) == 2:
        return Path(data[0]), Path(data[1])
    raise InvalidArgumentTypeError(
        f"{what} must be a CocoDataset or an (annotations JSON, image folder) pair, got {type(data).__name__}"
    )


def _device(options: TrainOptions, model: YolactPP) -> torch.device:
    device = torch.device(options.device) if options.device is not None else model.device
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(f"device {device} was asked for but CUDA is not available")
    if options.precision == "float16" and device.type != "cuda":
        raise InvalidArgumentError("precision='float16' (AMP) needs a CUDA device; use 'bfloat16' on the CPU")
    return device


class _InterruptFlag:
    """Ctrl-C during training sets a flag instead of raising mid-step; the loop saves a checkpoint
    at the next iteration boundary and then raises :class:`KeyboardInterrupt`."""

    def __init__(self) -> None:
        self.raised = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; a KeyboardInterrupt is still caught below
            return

        def handler(signum: int, frame: Any) -> None:
            if self.raised:  # a second Ctrl-C: stop at once
                raise KeyboardInterrupt
            self.raised = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class Trainer:
    """Fine-tunes ``model`` on ``train_data``; :meth:`fit` runs it (see the module notes).

    ``model`` is the starting point (a zoo model, a checkpoint, a folder; or any model when
    ``backbone_weights`` re-initialises it) and is not modified: the trained model is a new one,
    for the dataset's classes. ``options`` / keyword arguments: :class:`TrainOptions`.
    """

    #: Whether this process writes checkpoints, logs and validation (rank 0 of a distributed run).
    is_main = True

    def __init__(
        self,
        model: YolactPP,
        train_data: DataSource,
        val_data: DataSource | None = None,
        options: TrainOptions | None = None,
        **kwargs: Any,
    ) -> None:
        # An eager model (a YolactPP or subclass) is one with a YolactNetwork; checked structurally
        # so this module need not import yolactpp.model (which imports training lazily for fit).
        if not isinstance(getattr(model, "network", None), YolactNetwork):
            raise InvalidArgumentTypeError(f"model must be a YolactPP, got {type(model).__name__}")
        self.options = TrainOptions.build(options, **kwargs)
        self.start_model = model
        self.train_data = train_data
        self.val_paths = None if val_data is None else _paths(val_data, "val_data")
        self.folder = RunFolder(self.options.output_dir)
        self.device = _device(self.options, model)

    # -- setup ------------------------------------------------------------------------------------
    def _preprocess(self) -> PreprocessConfig:
        base = self.start_model.config.preprocess
        size = self.options.image_size
        return base if size is None else PreprocessConfig(size=size, mean=base.mean, std=base.std)

    def _dataset(self) -> CocoDataset:
        preprocess = self._preprocess()
        if isinstance(self.train_data, CocoDataset):
            if self.train_data.preprocess_config != preprocess:
                raise InvalidArgumentError(
                    f"train_data was built for input {self.train_data.preprocess_config}, the model trains on {preprocess}"
                )
            if self.train_data.augment_options is None:
                raise InvalidArgumentError("train_data is a validation dataset (augment=False); training needs augment=True")
            return self.train_data
        annotations, images = _paths(self.train_data, "train_data")
        return CocoDataset(annotations, images, preprocess, augment=True, skip_bad=self.options.skip_bad)

    def _network(
        self, config: ModelConfig, resume: Checkpoint | None, generator: torch.Generator
    ) -> tuple[YolactNetwork, tuple[str, ...]]:
        """The network to train and the keys re-initialised for the dataset's classes."""
        if resume is not None:
            weights = resume.weights()
            if weights.config.class_names != config.class_names:
                raise CheckpointError(
                    f"{resume.path} was trained on classes {list(weights.config.class_names)}, the data has "
                    f"{list(config.class_names)}: resume with the same data"
                )
            return build_network(weights), ()
        if self.options.backbone_weights is not None:
            network = network_from_backbone(config, self.options.backbone_weights, generator)
            return network, tuple(network.state_dict())
        return fine_tune_network(self.start_model.network, config, generator)

    def _prepare_folder(self) -> Checkpoint | None:
        """Ready the output folder; the checkpoint to resume from (a distributed wrapper shares rank 0's)."""
        if not self.is_main:
            return None
        options = self.options
        return self.folder.prepare(options.to_dict(), resume=options.resume, overwrite=options.overwrite)

    def _iteration_done(self, iteration: int, values: dict[str, float], checkpoint: Checkpoint | None) -> None:
        """Called by every process after each step (``checkpoint``: the one just saved, on rank 0);
        a hook for an engine that reports metrics and checkpoints (Ray Train)."""

    def make_loader(self, dataset: CocoDataset) -> SampleLoader:
        """The batches of this process (a distributed wrapper gives each rank its share here)."""
        return make_loader(dataset, self.options.batch_size, self.options.workers, self.options.seed)

    # -- the run ------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train; return the result. Raises :class:`~yolactpp.train.step.TrainingDivergedError` on a
        NaN / infinite loss (the last good checkpoint stays) and :class:`KeyboardInterrupt` after
        saving a checkpoint when interrupted."""
        options = self.options
        dataset = self._dataset()  # bad data fails before anything is written
        resume = self._prepare_folder()
        config = training_config(
            self.start_model.config, dataset.class_names, dataset.category_ids, options.image_size
        )
        generator = torch.Generator().manual_seed(options.seed)
        network, fresh = self._network(config, resume, generator)
        config = network.config
        semantic = SemanticHead(config.fpn_channels, config.num_classes)
        xavier_init(semantic, generator)
        model = type(self.start_model)(config, network=network).to(self.device)
        semantic.to(self.device).to(memory_format=torch.channels_last)
        loss_config = LossConfig.for_model(config)

        set_train_mode(network, options.freeze_batchnorm)
        params = [p for p in network.parameters() if p.requires_grad] + list(semantic.parameters())
        optimizer = torch.optim.SGD(params, lr=options.lr, momentum=options.momentum, weight_decay=options.weight_decay)
        scaler = torch.amp.GradScaler("cuda") if options.precision == "float16" else None
        log = MetricsLog(self.folder.metrics)
        about = {"trained_from": self.start_model.config.name, "reinitialised": list(fresh)}
        start, elapsed = 0, 0.0
        if resume is not None:
            about["reinitialised"] = (self.folder.read_record() or {}).get("reinitialised", [])
            state = resume.training_state()
            optimizer.load_state_dict(state["optimizer"])
            semantic.load_state_dict(state["semantic_head"])
            generator.set_state(state["generator"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
            start, elapsed = int(state["iteration"]), float(state["elapsed"])
            if self.is_main:
                log.truncate_after(start)
        if self.is_main:
            self.folder.write_record("running", start, options.to_dict(), **about)

        def save(iteration: int) -> Checkpoint:
            training_state = {
                "optimizer": optimizer.state_dict(),
                "semantic_head": semantic.state_dict(),
                "generator": generator.get_state(),
                "elapsed": elapsed + time.perf_counter() - session_start,
            }
            if scaler is not None:
                training_state["scaler"] = scaler.state_dict()
            return self.folder.save_checkpoint(iteration, config, network_state(network), training_state)

        loader = self.make_loader(dataset)
        iteration = start
        validation: CocoEvalResult | None = None
        interrupt = _InterruptFlag()
        session_start = time.perf_counter()
        progress = self._progress(start)
        try:
            with interrupt.installed():
                batches = loader.batches(start)
                while iteration < options.iterations:
                    if interrupt.raised:
                        raise KeyboardInterrupt
                    images, targets = next(batches)
                    rate = learning_rate(iteration, options)
                    set_learning_rate(optimizer, rate)
                    values = self._step(network, semantic, images, targets, loss_config, generator, optimizer, scaler, iteration)
                    iteration += 1
                    progress.update(1)
                    progress.set_postfix(loss=f"{values['total']:.3f}", lr=f"{rate:.2e}", refresh=False)
                    if self.is_main and (iteration % options.log_every == 0 or iteration == options.iterations):
                        now = elapsed + time.perf_counter() - session_start
                        log.append({"iteration": iteration, "lr": rate, "time": round(now, 3), "loss": values["total"],
                                    **{k: v for k, v in values.items() if k != "total"}})  # fmt: skip
                    checkpoint = None
                    if self.is_main and (iteration % options.checkpoint_every == 0 or iteration == options.iterations):
                        checkpoint = save(iteration)
                    self._iteration_done(iteration, values, checkpoint)
                    if self._validate_now(iteration):
                        validation = self._validate(model, network, iteration, log)
        except KeyboardInterrupt:
            if self.is_main:
                checkpoint = save(iteration) if iteration > start else self.folder.latest_checkpoint()
                where = None if checkpoint is None else str(checkpoint.path)
                self.folder.write_record("stopped", iteration, options.to_dict(), checkpoint=where, **about)
                plot_curves(log.read(), self.folder.curves)
            raise
        except BaseException as exc:
            if self.is_main:
                last = self.folder.latest_checkpoint()
                self.folder.write_record(
                    "failed", iteration, options.to_dict(), error=str(exc),
                    checkpoint=None if last is None else str(last.path), **about,
                )  # fmt: skip
                plot_curves(log.read(), self.folder.curves)
            raise
        finally:
            progress.close()
        model.eval()
        model_dir = self.folder.model
        if self.is_main:
            provenance = {"trained_from": self.start_model.config.name, "iterations": iteration, "seed": options.seed}
            model_dir = self.folder.save_model(config, network_state(network), provenance)
            plot_curves(log.read(), self.folder.curves)
            self.folder.write_record("finished", iteration, options.to_dict(), model=str(model_dir), **about)
        return TrainResult(model, self.folder.root, model_dir, iteration, validation)

    def _step(
        self,
        network: YolactNetwork,
        semantic: nn.Module,
        images: torch.Tensor,
        targets: list[ImageTargets],
        loss_config: LossConfig,
        generator: torch.Generator,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        iteration: int,
    ) -> dict[str, float]:
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        targets = [t.to(self.device) for t in targets]
        losses = forward_losses(network, semantic, images, targets, loss_config, generator, self.options.precision)
        values = check_finite(losses, iteration + 1)
        apply_gradients(losses["total"], optimizer, self.options, scaler)
        return values

    def _progress(self, start: int) -> Any:
        from tqdm import tqdm

        return tqdm(
            total=self.options.iterations,
            initial=start,
            unit="it",
            desc="train",
            disable=not (self.options.progress and self.is_main),
            dynamic_ncols=True,
        )

    def _validate_now(self, iteration: int) -> bool:
        if self.val_paths is None or not self.is_main:
            return False
        every = self.options.val_every
        return iteration == self.options.iterations or (every is not None and iteration % every == 0)

    def _validate(self, model: YolactPP, network: YolactNetwork, iteration: int, log: MetricsLog) -> CocoEvalResult:
        """Box and mask AP on the validation data (COCOeval), logged; back to training mode after."""
        assert self.val_paths is not None
        annotations, images = self.val_paths
        model.eval()
        try:
            result = evaluate_coco(model, annotations, images, batch_size=self.options.batch_size)
        finally:
            set_train_mode(network, self.options.freeze_batchnorm)
        record: dict[str, Any] = {"kind": "val", "iteration": iteration}
        for kind, metrics in (("box", result.box), ("mask", result.mask)):
            record.update({f"{kind}_{name}": value for name, value in metrics.items()})
        log.append(record)
        return result
