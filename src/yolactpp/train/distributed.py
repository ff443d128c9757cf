"""Data-parallel training: the :class:`~yolactpp.train.trainer.Trainer` in each process of a group.

Whoever starts the processes (``torchrun``, Ray Train, a test's ``mp.spawn``) initialises
``torch.distributed``; :class:`DistributedTrainer` then runs the ordinary trainer in every process
with four changes:

* each process loads its slice of every global batch (``batch_size`` images each, so the global
  batch is ``batch_size * world_size``; :func:`~yolactpp.train.loader.make_loader`'s ``shard``);
* the loss normalisers (positive priors, images) are summed over the processes, and the gradients
  too (DDP averages; the loss is scaled by the world size), so a step equals one process's step on
  the whole global batch - exactly so with frozen BatchNorm, up to the order of float additions;
* the logged loss terms are the global batch's (summed over the processes' shares);
* only rank 0 writes (checkpoints, metrics, validation, the final model); the others wait for its
  decision on the output folder and resume from the same checkpoint. The output folder must be one
  all processes see (one machine, or a shared filesystem); Ray Train also copies every checkpoint to
  its storage path (:mod:`yolactpp.integrations.ray.train`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from yolactpp.errors import InvalidArgumentError
from yolactpp.train.checkpointing import Checkpoint, OutputFolderError
from yolactpp.train.loader import SampleLoader, make_loader
from yolactpp.train.step import apply_gradients, check_finite, forward_losses
from yolactpp.train.trainer import Trainer

if TYPE_CHECKING:
    from yolactpp.network import YolactNetwork
    from yolactpp.train.coco_dataset import CocoDataset
    from yolactpp.train.loss_config import LossConfig
    from yolactpp.train.targets import ImageTargets

__all__ = ["DistributedTrainer", "ProcessGroup", "launched_by_torchrun"]

#: Environment variables torchrun sets in every process it starts.
_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its rendezvous variables are set)."""
    return all(name in os.environ for name in _TORCHRUN_ENV)


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in an initialised ``torch.distributed`` group and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @classmethod
    def current(cls, device: torch.device | None = None) -> ProcessGroup:
        """The default process group (initialised by the launcher); ``device``: the CPU unless given."""
        if not dist.is_available() or not dist.is_initialized():
            raise InvalidArgumentError("distributed training needs an initialised torch.distributed process group")
        return cls(dist.get_rank(), dist.get_world_size(), device or torch.device("cpu"))

    @classmethod
    def from_torchrun(cls, use_gpu: bool | None = None) -> ProcessGroup:
        """Initialise the default group from torchrun's variables (NCCL on GPUs, gloo on CPUs)."""
        local_rank = int(os.environ["LOCAL_RANK"])
        gpu = torch.cuda.is_available() if use_gpu is None else use_gpu
        device = torch.device("cuda", local_rank) if gpu else torch.device("cpu")
        if gpu:
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if gpu else "gloo")
        return cls.current(device)


class _LossModule(nn.Module):
    """Network + semantic head with the losses as ``forward``, so DDP sees the whole graph."""

    def __init__(self, network: YolactNetwork, semantic_head: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.semantic_head = semantic_head

    def forward(
        self,
        images: torch.Tensor,
        targets: list[ImageTargets],
        loss_config: LossConfig,
        generator: torch.Generator,
        precision: str,
    ) -> dict[str, torch.Tensor]:
        return forward_losses(
            self.network, self.semantic_head, images, targets, loss_config, generator, precision, _sum_over_group
        )


def _sum_over_group(counts: torch.Tensor) -> torch.Tensor:
    counts = counts.clone()
    dist.all_reduce(counts, op=dist.ReduceOp.SUM)
    return counts


class DistributedTrainer(Trainer):
    """The trainer as one process of a data-parallel group (see the module notes); ``group`` defaults
    to the initialised default group on the CPU. Arguments otherwise as :class:`Trainer`."""

    def __init__(self, *args: Any, group: ProcessGroup | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group or ProcessGroup.current(self.device)
        self.is_main = self.group.rank == 0
        self.device = self.group.device
        self._ddp: tuple[YolactNetwork, DistributedDataParallel] | None = None

    def _prepare_folder(self) -> Checkpoint | None:
        """Rank 0 readies the folder; every rank gets its resume checkpoint or its refusal."""
        decision: list[Any] = [None]
        if self.is_main:
            try:
                checkpoint = super()._prepare_folder()
                decision[0] = ("ok", None if checkpoint is None else (str(checkpoint.path), checkpoint.iteration))
            except Exception as exc:  # whatever stops rank 0 stops every rank, instead of leaving them waiting
                decision[0] = ("refused", str(exc))
                dist.broadcast_object_list(decision, src=0)
                raise
        dist.broadcast_object_list(decision, src=0)
        status, payload = decision[0]
        if status == "refused":
            raise OutputFolderError(f"rank 0 could not prepare the output folder: {payload}")
        return None if payload is None else Checkpoint(Path(payload[0]), payload[1])

    def make_loader(self, dataset: CocoDataset) -> SampleLoader:
        """This rank's slice of every global batch."""
        options, group = self.options, self.group
        return make_loader(
            dataset, options.batch_size, options.workers, options.seed, shard=(group.rank, group.world_size)
        )

    def _wrapped(self, network: YolactNetwork, semantic: nn.Module, loss_config: LossConfig) -> DistributedDataParallel:
        if self._ddp is None or self._ddp[0] is not network:
            # YOLACT++'s mask-IoU net gets no gradient on a rank whose masks all fall below its area
            # threshold: DDP must then look for unused parameters instead of waiting for them.
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(
                _LossModule(network, semantic), device_ids=device_ids, find_unused_parameters=loss_config.use_maskiou
            )
            self._ddp = (network, module)
        return self._ddp[1]

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
        losses = self._wrapped(network, semantic, loss_config)(
            images, targets, loss_config, generator, self.options.precision
        )
        # Every rank checks the global values, so a NaN stops all of them at the same step.
        names = list(losses)
        shares = torch.stack([losses[k].detach().float() for k in names])
        dist.all_reduce(shares, op=dist.ReduceOp.SUM)
        values = check_finite(dict(zip(names, shares)), iteration + 1)
        # DDP averages the gradients over the ranks; each loss is a share of the global one, so scale back to a sum.
        apply_gradients(losses["total"] * self.group.world_size, optimizer, self.options, scaler)
        return values
