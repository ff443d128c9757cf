"""Turning ``predict`` / ``iter_predict`` inputs into batches of read images: the one loop behind both
the eager model and an exported file's predictor.

Each model supplies only ``predict_read(arrays, paths) -> list[Detections]`` (images already read
into RGB arrays); reading, batching, the ``on_error`` policy and tracking live here. Torch-free, so
the ONNX predictor can use it without torch installed.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast, get_args

import numpy as np

from yolactpp.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    OnError,
    PredictionFailure,
    YolactppWarning,
    is_item_error,
    warn_caller,
)
from yolactpp.preprocess import ImageInput, to_rgb_array
from yolactpp.results import Detections

if TYPE_CHECKING:
    from yolactpp.tracking import Tracker

__all__ = ["ON_ERROR", "ReadPredictor", "as_batch", "path_of", "predict_images", "stream_predictions"]

ON_ERROR: tuple[str, ...] = get_args(OnError)  # "raise", "skip", "yield"

ReadPredictor = Callable[[list[np.ndarray], list["str | None"]], list[Detections]]
"""Predicts images already read into RGB arrays; the paths (or None) go into the results."""


def path_of(image: ImageInput) -> str | None:
    """The path an image was given as, for :attr:`Detections.path` (None for arrays and PIL images)."""
    return str(image) if isinstance(image, (str, os.PathLike)) else None


def as_batch(images: ImageInput | Sequence[ImageInput]) -> tuple[list[ImageInput], bool]:
    """``predict``'s argument as a list of images, and whether it was a single image.

    Only lists and tuples are batches (a ``str`` path is a Sequence too); iterators are refused
    because ``predict`` runs everything as one batch.
    """
    if isinstance(images, Iterator):
        raise InvalidArgumentTypeError(
            "predict takes one image or a list of images; use iter_predict for iterators and streams"
        )
    if isinstance(images, (list, tuple)):
        return list(images), False
    return [cast(ImageInput, images)], True


def predict_images(batch: Sequence[ImageInput], predict_read: ReadPredictor) -> list[Detections]:
    """Read every image (an unreadable one raises) and predict them as one batch."""
    arrays = [to_rgb_array(image) for image in batch]
    return predict_read(arrays, [path_of(image) for image in batch])


def check_stream_arguments(batch_size: object, on_error: object) -> None:
    """Refuse a bad ``batch_size`` / ``on_error`` before the first image is read."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if on_error not in ON_ERROR:
        raise InvalidArgumentError(f"on_error must be one of {', '.join(map(repr, ON_ERROR))}, got {on_error!r}")


def stream_predictions(
    images: Iterable[ImageInput],
    batch_size: int,
    on_error: str,
    predict_read: ReadPredictor,
    track: bool | Tracker = False,
) -> Iterator[Any]:
    """Predict lazily, ``batch_size`` images at a time, applying the ``on_error`` policy and tracking.

    Call :func:`check_stream_arguments` first (eagerly: this is a generator).
    ``on_error="raise"``: an unreadable image raises. ``"skip"``: it is left out with a
    :class:`~yolactpp.errors.YolactppWarning`. ``"yield"``: a
    :class:`~yolactpp.errors.PredictionFailure` takes its place. The rest of its batch is predicted
    either way; errors that are not about one input (library bugs, the iterator's own errors)
    always propagate.
    """
    stream = _batches(iter(images), batch_size, on_error, predict_read)
    if track is False:
        return stream
    from yolactpp.tracking import with_tracks

    return with_tracks(stream, track)


def _batches(
    images: Iterator[ImageInput], batch_size: int, on_error: str, predict_read: ReadPredictor
) -> Iterator[Detections | PredictionFailure]:
    start = 0
    while chunk := list(itertools.islice(images, batch_size)):
        if on_error == "raise":
            yield from predict_images(chunk, predict_read)
        else:
            yield from _predict_tolerant(chunk, start, predict_read, keep_failures=on_error == "yield")
        start += len(chunk)


def _predict_tolerant(
    chunk: list[ImageInput], start: int, predict_read: ReadPredictor, keep_failures: bool
) -> Iterator[Detections | PredictionFailure]:
    """One batch where an unreadable item becomes a :class:`PredictionFailure` (or a warning)."""
    read: list[tuple[int, np.ndarray]] = []
    failures: dict[int, PredictionFailure] = {}
    for i, image in enumerate(chunk):
        try:
            read.append((i, to_rgb_array(image)))
        except Exception as exc:
            if not is_item_error(exc):
                raise
            failures[i] = PredictionFailure(start + i, path_of(image), exc)
    results = predict_read([a for _, a in read], [path_of(chunk[i]) for i, _ in read]) if read else []
    by_position = dict(zip((i for i, _ in read), results, strict=True))
    for i in range(len(chunk)):
        if i in by_position:
            yield by_position[i]
        elif keep_failures:
            yield failures[i]
        else:
            warn_caller(f"skipped {failures[i].message}", YolactppWarning)
