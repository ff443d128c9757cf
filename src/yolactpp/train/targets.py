"""Ground truth for one training image, as the loss consumes it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from yolactpp.errors import InvalidArgumentError

__all__ = ["ImageTargets"]


@dataclass(frozen=True)
class ImageTargets:
    """The objects of one augmented training image at network-input resolution.

    ``boxes`` [n, 4] x1, y1, x2, y2 as fractions of the input width/height (0..1); ``labels`` [n]
    int64 contiguous class indices 0..C-1 (background not counted); ``masks`` [n, H, W] float
    {0, 1} at the network input size. Crowd objects come last: the final ``num_crowds`` rows are
    crowd regions (their labels are ignored), as in the original loader.
    """

    boxes: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor
    num_crowds: int = 0

    def __post_init__(self) -> None:
        n = self.boxes.shape[0]
        if self.boxes.dim() != 2 or self.boxes.shape[1] != 4:
            raise InvalidArgumentError(f"boxes must be [n, 4], got {list(self.boxes.shape)}")
        if self.labels.shape != (n,) or self.masks.dim() != 3 or self.masks.shape[0] != n:
            raise InvalidArgumentError(
                f"labels [n] and masks [n, H, W] must match {n} boxes, "
                f"got {list(self.labels.shape)} and {list(self.masks.shape)}"
            )
        if not 0 <= self.num_crowds <= n:
            raise InvalidArgumentError(f"num_crowds must be in [0, {n}], got {self.num_crowds}")

    def to(self, device: torch.device | str) -> ImageTargets:
        return ImageTargets(self.boxes.to(device), self.labels.to(device), self.masks.to(device), self.num_crowds)
