"""One optimisation step, as functions a single-process trainer and a distributed wrapper share.

:func:`forward_losses` runs the network, the semantic head and the loss under the run's autocast;
:func:`check_finite` stops on a NaN / infinite loss naming the term; :func:`apply_gradients` does
backward, optional clipping and the optimizer step (through a gradient scaler for float16).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from yolactpp.errors import YolactppError
from yolactpp.network import YolactNetwork
from yolactpp.train.loss import compute_losses
from yolactpp.train.loss_config import LossConfig
from yolactpp.train.options import TrainOptions
from yolactpp.train.targets import ImageTargets

__all__ = ["TrainingDivergedError", "apply_gradients", "autocast", "check_finite", "forward_losses"]

#: What each loss key stands for, for messages.
TERM_NAMES = {
    "B": "box",
    "C": "confidence",
    "M": "mask",
    "S": "semantic segmentation",
    "I": "mask IoU",
    "total": "total",
}


class TrainingDivergedError(YolactppError, FloatingPointError):
    """A loss term became NaN or infinite; the message names the iteration and the term."""

    def __init__(self, message: str, iteration: int, term: str) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.term = term


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """bfloat16 / float16 autocast on ``device`` for ``precision``; nothing for float32."""
    if precision == "float32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
    with torch.autocast(device.type, dtype=dtype):
        yield


def forward_losses(
    network: YolactNetwork,
    semantic_head: nn.Module,
    images: torch.Tensor,
    targets: Sequence[ImageTargets],
    loss_config: LossConfig,
    generator: torch.Generator | None,
    precision: str = "float32",
    sum_counts: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """The loss terms of one batch (``B``, ``C``, ``M``, ``S``, ``I`` and ``total``); ``sum_counts``:
    see :func:`~yolactpp.train.loss.compute_losses` (a data-parallel run's share of the global batch)."""
    with autocast(images.device, precision):
        raw = network.forward_raw(images)
        segmentation = semantic_head(raw.fpn[0])
        return compute_losses(raw, segmentation, targets, network.maskiou_net, loss_config, generator, sum_counts)


def check_finite(losses: dict[str, torch.Tensor], iteration: int) -> dict[str, float]:
    """The terms as floats; a NaN / infinite one raises :class:`TrainingDivergedError` naming it
    (the terms first, so the culprit is named rather than the total)."""
    values = {k: float(v.detach()) for k, v in losses.items()}
    for key in sorted(values, key=lambda k: k == "total"):
        value = values[key]
        if value != value or value in (float("inf"), float("-inf")):
            name = TERM_NAMES.get(key, key)
            raise TrainingDivergedError(
                f"training diverged: the {name} loss ({key}) is {value} at iteration {iteration}; lower the "
                "learning rate (lr) or clip gradients (grad_clip)",
                iteration,
                key,
            )
    return values


def apply_gradients(
    total: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    options: TrainOptions,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Backward through ``total``, clip (``options.grad_clip``), step and clear the gradients."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if scaler is not None:
        scaler.scale(total).backward()
        if options.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        total.backward()
        if options.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
