"""The training / validation dataset: validated COCO instances -> (network input, :class:`ImageTargets`).

A sample's randomness comes only from its :class:`SampleKey` (seed, epoch, index), so the same
key gives the same tensors in any process, whatever the number of loader workers or their order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from yolactpp.config import PreprocessConfig
from yolactpp.errors import DatasetError, InvalidArgumentError, InvalidIndexError
from yolactpp.preprocess import InvalidImageError, load_image, to_rgb_array
from yolactpp.train.augment import DEFAULT_FILL, AugmentOptions, Sample, augment, to_network_input
from yolactpp.train.coco_instances import CocoImage, CocoInstances, decode_masks, read_coco_instances
from yolactpp.train.targets import ImageTargets

__all__ = ["CocoDataset", "SampleKey"]

#: How many other images an augmented sample left without objects may be replaced by.
_MAX_RESAMPLES = 100


class SampleKey(NamedTuple):
    """What a loader asks a dataset for: sample ``item`` in ``epoch`` of the run seeded ``seed``."""

    item: int
    epoch: int = 0
    seed: int = 0


class CocoDataset(torch.utils.data.Dataset):
    """A COCO-format instance dataset as training samples: ``dataset[i]`` (or ``dataset[SampleKey(i,
    epoch, seed)]``) is ``(image [3, S, S] float32, ImageTargets)`` at the model's input size.

    ``annotations`` is an ``instances_*.json`` file, ``images`` the folder its ``file_name`` values
    are relative to, ``preprocess_config`` the model's (``model.config.preprocess``): input size and
    normalisation, the same as inference. Validation runs here, eagerly (see
    :func:`~yolactpp.train.coco_instances.read_coco_instances`, which takes ``skip_bad``,
    ``include_unannotated`` and ``check_image_files``).

    ``augment=True`` applies the original's training augmentation (or pass an :class:`AugmentOptions`
    to choose steps); ``False`` is the deterministic validation path: resize and normalise only.
    As in the original, an augmented sample left without objects is replaced by another image drawn
    from the same key's generator.
    """

    def __init__(
        self,
        annotations: str | os.PathLike[str],
        images: str | os.PathLike[str],
        preprocess_config: PreprocessConfig,
        *,
        augment: bool | AugmentOptions = True,
        skip_bad: bool = False,
        include_unannotated: bool = False,
        check_image_files: bool = True,
    ) -> None:
        if not isinstance(preprocess_config, PreprocessConfig):
            raise InvalidArgumentError(
                f"preprocess_config must be a PreprocessConfig (model.config.preprocess), got {type(preprocess_config).__name__}"
            )
        self.instances: CocoInstances = read_coco_instances(
            annotations,
            images,
            skip_bad=skip_bad,
            include_unannotated=include_unannotated,
            check_image_files=check_image_files,
        )
        self.preprocess_config = preprocess_config
        self.augment_options: AugmentOptions | None = (
            augment if isinstance(augment, AugmentOptions) else AugmentOptions() if augment else None
        )
        self.skip_bad = skip_bad
        if self.augment_options is not None and not any(image.objects for image in self.instances.images):
            raise DatasetError(f"{self.annotation_file}: no image has an annotation to train on")
        mean = preprocess_config.mean
        self._fill = DEFAULT_FILL if mean is None else (float(mean[0]), float(mean[1]), float(mean[2]))

    # -- what a trainer needs to know -------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, contiguous class ``i`` first (categories sorted by id)."""
        return self.instances.class_names

    @property
    def category_ids(self) -> tuple[int, ...]:
        """The dataset's COCO category id of each class (``to_coco(category_ids=...)`` writes them back)."""
        return self.instances.category_ids

    @property
    def skipped(self) -> Mapping[str, int]:
        """What ``skip_bad`` left out, per reason (keys of :data:`~yolactpp.train.coco_instances.REASONS`)."""
        return self.instances.skipped

    @property
    def annotation_file(self) -> Path:
        return self.instances.annotation_file

    @property
    def image_ids(self) -> tuple[Any, ...]:
        """The COCO image id of each sample, in index order."""
        return tuple(image.image_id for image in self.instances.images)

    def image(self, index: int) -> CocoImage:
        """The validated record of sample ``index`` (file path, size, objects)."""
        return self.instances.images[index]

    def __len__(self) -> int:
        return len(self.instances.images)

    def __repr__(self) -> str:
        mode = "augmented" if self.augment_options is not None else "validation"
        return (
            f"CocoDataset({self.annotation_file}, {len(self)} images, {len(self.class_names)} classes, "
            f"{self.preprocess_config.size}x{self.preprocess_config.size}, {mode})"
        )

    # -- samples --------------------------------------------------------------------------------
    def load(self, index: int) -> Sample:
        """Image ``index`` decoded (RGB uint8) with its masks, boxes (pixels) and labels, unaugmented.

        An image that no longer decodes raises :class:`~yolactpp.errors.DatasetError` naming it.
        """
        record = self.instances.images[index]
        where = f"{self.annotation_file}: image {record.image_id!r} ({record.path})"
        try:
            image = to_rgb_array(load_image(record.path))
        except (InvalidImageError, OSError) as exc:
            raise DatasetError(f"{where}: cannot be read: {exc}") from None
        if image.shape[:2] != (record.height, record.width):
            raise DatasetError(
                f"{where}: decodes to {image.shape[1]} x {image.shape[0]} pixels, the JSON says {record.width} x {record.height}"
            )
        objects = record.objects
        boxes = np.array([obj.box for obj in objects], dtype=np.float64).reshape(-1, 4)
        labels = np.array([obj.label for obj in objects], dtype=np.int64)
        return Sample(image, decode_masks(objects, record.height, record.width), boxes, labels, record.num_crowds)

    def __getitem__(self, key: int | SampleKey | tuple[int, int, int]) -> tuple[torch.Tensor, ImageTargets]:
        """The sample of ``key`` (an index: epoch 0, seed 0), built with one torch thread.

        torch's bilinear resize rounds differently with other thread counts; building every sample
        single-threaded (as loader workers are) makes a key's tensors bit-identical in any process.
        """
        index, epoch, seed = key if isinstance(key, tuple) else SampleKey(int(key))
        if not -len(self) <= index < len(self):
            raise InvalidIndexError(f"sample index {index} out of range for {len(self)} images")
        threads = torch.get_num_threads()
        if threads == 1:
            return self._build(index % len(self), epoch, seed)
        torch.set_num_threads(1)
        try:
            return self._build(index % len(self), epoch, seed)
        finally:
            torch.set_num_threads(threads)

    def _build(self, index: int, epoch: int, seed: int) -> tuple[torch.Tensor, ImageTargets]:
        if self.augment_options is None:
            return to_network_input(self.load(index), self.preprocess_config)
        rng = np.random.default_rng([seed, epoch, index])
        for _ in range(_MAX_RESAMPLES):
            sample = augment(self.load(index), rng, self.augment_options, self._fill)
            image, targets = to_network_input(sample, self.preprocess_config, self.augment_options)
            if len(targets.labels):
                return image, targets
            index = int(rng.integers(len(self)))
        raise DatasetError(
            f"{self.annotation_file}: {_MAX_RESAMPLES} augmented samples in a row kept no object "
            f"(discard_box_width/height {self.augment_options.discard_box_width:g}/{self.augment_options.discard_box_height:g} too large?)"
        )
