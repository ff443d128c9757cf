"""Calibration images for int8 quantization: the user's (a folder, a list, an iterator) or a small
default set of public-domain photographs.

Static int8 quantization measures each layer's activation range on these images, so they should
look like what the model will see; a few dozen are enough (more cost time, not accuracy).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Union, cast

import numpy as np

from yolactpp._facts import IMAGE_SUFFIXES
from yolactpp.errors import YolactppError, YolactppWarning, is_item_error, warn_caller
from yolactpp.preprocess import ImageInput

__all__ = [
    "DEFAULT_CALIBRATION_COUNT",
    "CalibrationError",
    "CalibrationSource",
    "SkippedCalibrationImageWarning",
    "calibration_images",
    "read_calibration_images",
    "sample_photographs",
]

#: Images used when the caller does not say: enough for stable min/max ranges, ~1-2 s each on 2 cores.
DEFAULT_CALIBRATION_COUNT = 32

#: scikit-image's shipped photographs whose licence allows redistribution (public domain or CC0,
#: as stated in ``skimage.data``), with COCO objects in them: a person, a cat, cups, a rocket.
SAMPLE_PHOTOGRAPHS = ("astronaut", "chelsea", "coffee", "rocket", "camera")

CalibrationSource = Union[str, "os.PathLike[str]", Iterable[ImageInput], None]


class CalibrationError(YolactppError, ValueError):
    """Calibration images that cannot be used (none found, a wrong count)."""


def sample_photographs() -> list[np.ndarray]:
    """The default calibration set: five public-domain / CC0 photographs shipped with scikit-image
    (``pip install 'yolactpp[int8]'``), as RGB uint8 arrays."""
    try:
        import skimage.data
    except ImportError:
        raise CalibrationError(
            "the default calibration photographs come from scikit-image: pip install 'yolactpp[int8]' "
            "(or pass your own images)"
        ) from None
    return [getattr(skimage.data, name)() for name in SAMPLE_PHOTOGRAPHS]


def calibration_images(source: CalibrationSource = None, count: int | None = None) -> list[ImageInput]:
    """The images to calibrate on, at most ``count`` of them (default :data:`DEFAULT_CALIBRATION_COUNT`).

    ``source`` is a folder (its image files, sorted by name; when there are more than ``count``,
    an evenly spaced selection so that a folder of video frames is not sampled from its start only),
    one image file, a list of images as ``predict`` takes them, any iterable of them (read lazily,
    only the first ``count``), or ``None`` for :func:`sample_photographs`.
    """
    if count is None:
        count = DEFAULT_CALIBRATION_COUNT
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise CalibrationError(f"the calibration image count must be an integer >= 1, got {count!r}")
    if source is None:
        return list(sample_photographs()[:count])
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return _spread(_image_files(path), count)
        if path.is_file():
            return [path]
        raise CalibrationError(f"calibration images: no such file or folder: {path}")
    if isinstance(source, np.ndarray) or _is_single_image(source):
        return [cast(ImageInput, source)]
    images = list(itertools.islice(iter(source), count))
    if not images:
        raise CalibrationError("calibration images: the given list or iterator is empty")
    return images


class SkippedCalibrationImageWarning(YolactppWarning):
    """A calibration image that could not be read was left out (as ``predict`` skips such files)."""


def read_calibration_images(images: list[ImageInput]) -> list[np.ndarray]:
    """Every image read into an RGB array now, before the slow export: an unreadable one (truncated,
    not an image) is left out with a :class:`SkippedCalibrationImageWarning` naming it;
    :class:`CalibrationError` when none can be read."""
    from yolactpp.preprocess import to_rgb_array

    arrays, skipped = [], []
    for i, image in enumerate(images):
        try:
            arrays.append(to_rgb_array(image))
        except Exception as exc:
            if not is_item_error(exc):
                raise
            label = str(image) if isinstance(image, (str, os.PathLike)) else f"image {i}"
            message = " ".join(str(exc).split())
            skipped.append(message if label in message else f"{label}: {message}")
            warn_caller(f"calibration: skipped {skipped[-1]}", SkippedCalibrationImageWarning)
    if not arrays:
        raise CalibrationError(f"none of the {len(images)} calibration image(s) could be read ({skipped[0]})")
    return arrays


def _image_files(folder: Path) -> list[Path]:

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration images: no image files ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return files


def _spread(files: list[Path], count: int) -> list[ImageInput]:
    if len(files) <= count:
        return list(files)
    picks = np.linspace(0, len(files) - 1, count).round().astype(int)
    return [files[i] for i in picks]


def _is_single_image(source: Any) -> bool:
    import torch
    from PIL import Image

    return isinstance(source, Image.Image) or (isinstance(source, torch.Tensor) and source.dim() == 3)
