"""The learning rate at each iteration: linear warm-up, then step decay (the original's ``train.py``)."""

from __future__ import annotations

import torch

from yolactpp.train.options import TrainOptions

__all__ = ["learning_rate", "set_learning_rate"]


def learning_rate(iteration: int, options: TrainOptions) -> float:
    """The rate for 0-based ``iteration``: ``warmup_lr -> lr`` linearly over the warm-up (as the
    original, iteration ``warmup`` itself reaches ``lr``), times ``gamma`` per decay step passed.

    A pure function of the iteration, so a resumed run picks up exactly where it stopped.
    """
    warmup = options.warmup
    if warmup > 0 and iteration <= warmup:
        rate = options.warmup_lr + (options.lr - options.warmup_lr) * (iteration / warmup)
    else:
        rate = options.lr
    passed = sum(1 for step in options.step_iterations if iteration >= step)
    if passed:
        rate = options.lr * options.gamma**passed  # as the original: a step overrides the warm-up
    return rate


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    """Set every parameter group's rate."""
    for group in optimizer.param_groups:
        group["lr"] = rate
