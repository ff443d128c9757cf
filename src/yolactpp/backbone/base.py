"""The interface every registered backbone implements."""

from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A feature extractor returning one tensor per stage.

    Subclasses set ``channels`` (output channels of each stage, in order) and return a tuple with
    one feature map per stage from :meth:`forward`; the model picks the stages it feeds the FPN.
    """

    channels: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:  # pragma: no cover - abstract
        raise NotImplementedError
