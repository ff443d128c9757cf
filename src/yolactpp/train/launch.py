"""Which trainer runs a fit: this process, the processes of a ``torchrun`` launch, or Ray Train."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch.distributed as dist

from yolactpp.train.distributed import DistributedTrainer, ProcessGroup, launched_by_torchrun
from yolactpp.train.trainer import Trainer

if TYPE_CHECKING:
    from yolactpp.model import YolactPP
    from yolactpp.train.options import TrainOptions
    from yolactpp.train.trainer import DataSource, TrainResult

__all__ = ["train"]


def train(model: YolactPP, train_data: DataSource, val_data: DataSource | None, options: TrainOptions) -> TrainResult:
    """Run ``options``' engine: Ray Train workers (``engine="ray"``); one data-parallel process of
    a ``torchrun`` launch or of a process group the caller initialised; else this process alone."""
    if options.engine == "ray":
        from yolactpp.integrations.ray.train import fit_on_ray

        return fit_on_ray(model, train_data, val_data, options)
    if launched_by_torchrun() and not dist.is_initialized():
        use_gpu = None if options.device is None else options.device.startswith("cuda")
        group = ProcessGroup.from_torchrun(use_gpu)
        try:
            return DistributedTrainer(model, train_data, val_data, options, group=group).fit()
        finally:
            dist.destroy_process_group()
    if dist.is_available() and dist.is_initialized():
        return DistributedTrainer(model, train_data, val_data, options).fit()
    return Trainer(model, train_data, val_data, options).fit()
