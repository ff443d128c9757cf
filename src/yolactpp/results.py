"""Typed per-image detection results."""

from __future__ import annotations

from typing import Sequence

import torch

from yolactpp.postprocess import upsample_masks

__all__ = ["Detections"]


class Detections:
    """Detections of one image, in the original's order (descending detection score).

    Attributes (all of length N, on the model's device):

    - ``boxes``: float [N, 4], (x1, y1, x2, y2) in original-image pixels, clamped to the image.
    - ``scores``: float [N], the final score (YOLACT++: detection score x predicted mask IoU).
    - ``labels``: int64 [N], 0-based class index into ``names``.
    - ``class_names``: list of N class names.
    - ``box_scores``: float [N], the detection score before mask re-scoring.
    - ``mask_iou``: float [N] predicted mask IoU (YOLACT++) or ``None``.
    - ``masks``: bool [N, H, W] at the original image size, built on first access from the
      soft masks at prototype resolution (``soft_masks``).
    """

    def __init__(
        self,
        *,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        names: Sequence[str],
        image_size: tuple[int, int],
        soft_masks: torch.Tensor,
        box_scores: torch.Tensor | None = None,
        mask_iou: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> None:
        n = int(scores.shape[0])
        for name, t in (("boxes", boxes), ("labels", labels), ("soft_masks", soft_masks)):
            if int(t.shape[0]) != n:
                raise ValueError(f"{name} has {t.shape[0]} rows but there are {n} scores")
        self.boxes = boxes
        self.scores = scores
        self.labels = labels
        self.names = tuple(names)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.soft_masks = soft_masks
        self.box_scores = scores if box_scores is None else box_scores
        self.mask_iou = mask_iou
        self._masks = masks

    # -- basic container protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def __repr__(self) -> str:
        h, w = self.image_size
        return f"Detections(n={len(self)}, image_size=(h={h}, w={w}), classes={sorted(set(self.class_names))})"

    @property
    def class_names(self) -> list[str]:
        """Class name of each detection."""
        return [self.names[i] for i in self.labels.tolist()]

    @property
    def masks(self) -> torch.Tensor:
        """Binary masks ``[N, H, W]`` at the original image size (computed once, then cached)."""
        if self._masks is None:
            h, w = self.image_size
            self._masks = upsample_masks(self.soft_masks, h, w)
        return self._masks

    def __getitem__(self, index: int | slice | torch.Tensor | Sequence[int]) -> "Detections":
        """Select detections by int, slice, bool mask or index list; every field follows."""
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"detection index {index} out of range for {len(self)} detections")
            index = slice(index, index + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            index = torch.as_tensor(index, device=self.scores.device)
            if index.dtype == torch.bool and index.shape != self.scores.shape:
                raise IndexError(f"boolean index of shape {tuple(index.shape)} for {len(self)} detections")

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return Detections(
            boxes=self.boxes[index],
            scores=self.scores[index],
            labels=self.labels[index],
            names=self.names,
            image_size=self.image_size,
            soft_masks=self.soft_masks[index],
            box_scores=self.box_scores[index],
            mask_iou=pick(self.mask_iou),
            masks=pick(self._masks),
        )

    def cpu(self) -> "Detections":
        """A copy with every tensor on the CPU."""
        return self.to("cpu")

    def to(self, device: torch.device | str) -> "Detections":
        """A copy with every tensor on ``device``."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return Detections(
            boxes=self.boxes.to(device),
            scores=self.scores.to(device),
            labels=self.labels.to(device),
            names=self.names,
            image_size=self.image_size,
            soft_masks=self.soft_masks.to(device),
            box_scores=self.box_scores.to(device),
            mask_iou=move(self.mask_iou),
            masks=move(self._masks),
        )
