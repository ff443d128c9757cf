"""Batches of training samples from worker processes, reproducible from one seed.

The order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and each sample's augmentation
from ``(seed, e, index)`` (:class:`~yolactpp.train.coco_dataset.SampleKey`), so the batches are the
same with 0, 1 or 8 workers, and a resumed run can start at any iteration
(:meth:`SampleLoader.batches`) and see what the uninterrupted run saw.

A sample that fails in a worker (an image that stopped decoding) is sent back as a message, not
raised there, so the main process raises the dataset's own :class:`~yolactpp.errors.DatasetError`
naming the file instead of a worker traceback; with the dataset's ``skip_bad`` it is left out of
its batch with a :class:`~yolactpp.errors.DatasetWarning`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from yolactpp.errors import DatasetError, DatasetWarning, InvalidArgumentError
from yolactpp.train.coco_dataset import SampleKey
from yolactpp.train.targets import ImageTargets

__all__ = ["Batch", "SampleLoader", "collate", "make_loader"]

#: A batch: images [B, 3, S, S] float32 and one :class:`ImageTargets` per image.
Batch = tuple[torch.Tensor, list[ImageTargets]]

# A tag mixed into the order's seed so it never coincides with a sample's (seed, epoch, index).
_ORDER_STREAM = 0x5EED


def collate(items: Sequence[tuple[torch.Tensor, ImageTargets]]) -> Batch:
    """Samples -> (images stacked [B, 3, S, S], list of their targets)."""
    if not items:
        raise InvalidArgumentError("cannot collate an empty batch")
    return torch.stack([image for image, _ in items]), [targets for _, targets in items]


@dataclass(frozen=True)
class _Failure:
    """A sample that raised :class:`DatasetError` in a worker: its key and the error's message."""

    key: SampleKey
    message: str


class _Guarded(Dataset):
    """The dataset, with its :class:`DatasetError` turned into a :class:`_Failure` value."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, ImageTargets] | _Failure:
        try:
            return self.dataset[key]
        except DatasetError as exc:
            return _Failure(key, str(exc))


def _guarded_collate(items: list[Any]) -> tuple[Batch | None, list[_Failure]]:
    failures = [item for item in items if isinstance(item, _Failure)]
    good = [item for item in items if not isinstance(item, _Failure)]
    return (collate(good) if good else None), failures


class _EpochSampler(Sampler[list[SampleKey]]):
    """Batches of keys for one epoch from a start batch; ``epoch`` / ``start`` set before iterating.

    With ``shard=(rank, world)`` the batches are those of ``batch_size * world`` images and this
    sampler yields slice ``rank`` of each: the processes of a data-parallel run together see the
    batches one process would see with the whole batch.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool, shard: tuple[int, int] = (0, 1)
    ) -> None:
        self.rank, world = shard
        self.local_batch = batch_size
        self.size, self.batch_size, self.seed = size, batch_size * world, seed
        self.shuffle, self.drop_last = shuffle, drop_last
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        full = self.size // self.batch_size if self.drop_last else math.ceil(self.size / self.batch_size)
        return max(full - self.start, 0)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch, _ORDER_STREAM]).permutation(self.size)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        order = self.order(self.epoch)
        stop = (self.size // self.batch_size) * self.batch_size if self.drop_last else self.size
        for first in range(self.start * self.batch_size, stop, self.batch_size):
            chunk = order[first : min(first + self.batch_size, stop)]
            chunk = chunk[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]
            yield [SampleKey(int(i), self.epoch, self.seed) for i in chunk]


class SampleLoader:
    """Reproducible batches of a dataset (see the module docs); build it with :func:`make_loader`.

    ``for images, targets in loader`` runs the next epoch (0 first); :meth:`epoch` runs a given one
    from a given batch; :meth:`batches` runs forever from a global iteration number, which is what
    an iteration-counted trainer (and its resume) uses. ``len(loader)`` is the batches per epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        workers: int,
        seed: int,
        shuffle: bool,
        drop_last: bool,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.workers = workers
        self.seed = seed
        self._sampler = _EpochSampler(len(dataset), batch_size, seed, shuffle, drop_last, shard)  # type: ignore[arg-type]
        self._next_epoch = 0
        self._loader = DataLoader(
            _Guarded(dataset),
            batch_sampler=self._sampler,
            num_workers=workers,
            collate_fn=_guarded_collate,
            persistent_workers=workers > 0,
        )

    def __len__(self) -> int:
        sampler = self._sampler
        return sampler.size // sampler.batch_size if sampler.drop_last else math.ceil(sampler.size / sampler.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self._next_epoch
        self._next_epoch += 1
        return self.epoch(epoch)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` (0-based), beginning with batch ``start``."""
        if epoch < 0 or start < 0:
            raise InvalidArgumentError(f"epoch and start must be >= 0, got {epoch} and {start}")
        self._sampler.epoch, self._sampler.start = epoch, start
        for batch, failures in self._loader:
            for failure in failures:
                if not getattr(self.dataset, "skip_bad", False):
                    raise DatasetError(failure.message)
                warnings.warn(f"skipped a sample: {failure.message}", DatasetWarning, stacklevel=2)
            if batch is not None:
                yield batch

    def batches(self, start_iteration: int = 0) -> Iterator[Batch]:
        """Batches without end, epoch after epoch, the first being global iteration ``start_iteration``."""
        per_epoch = len(self)
        if per_epoch == 0:
            raise InvalidArgumentError(
                f"the dataset has {len(self._sampler.order(0))} images, fewer than one batch of {self.batch_size} with drop_last"
            )
        epoch, start = divmod(start_iteration, per_epoch)
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int = 0,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    shard: tuple[int, int] = (0, 1),
) -> SampleLoader:
    """A :class:`SampleLoader` over ``dataset`` (a :class:`~yolactpp.train.coco_dataset.CocoDataset` or
    any dataset indexed by :class:`~yolactpp.train.coco_dataset.SampleKey`).

    ``workers`` processes (0: in this process) load and augment samples; they are started once and
    kept across epochs. ``seed`` (>= 0) fixes the order of every epoch and every sample's augmentation.
    ``shard=(rank, world)``: this process's ``batch_size`` images of each global batch of
    ``batch_size * world`` (a data-parallel run; each sample is augmented as it would be in one process).
    """
    rank, world = shard
    if not (isinstance(world, int) and isinstance(rank, int) and world >= 1 and 0 <= rank < world):
        raise InvalidArgumentError(f"shard must be (rank, world size) with 0 <= rank < world size, got {shard!r}")
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0), ("seed", seed, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise InvalidArgumentError("the dataset is empty")
    return SampleLoader(dataset, batch_size, workers, seed, shuffle, drop_last, shard)
