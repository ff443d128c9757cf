"""Training augmentation as the original's ``SSDAugmentation`` (dbolya/yolact ``utils/augmentations.py``),
and the step that turns an image and its objects into the network input and an :class:`ImageTargets`.

The chain, each step drawing from one ``numpy.random.Generator`` (so a sample is a pure function of
its generator's seed):

1. photometric distortion: brightness (p 1/2, +-32), then in a random order contrast (p 1/2,
   x0.5..1.5) and, in HSV, saturation (p 1/2, x0.5..1.5) and hue (p 1/2, +-18 degrees); values
   are not clipped, as in the original (OpenCV's float HSV formulas); when neither saturation nor
   hue changes, the HSV round trip (the original always makes it) is skipped: it only adds rounding;
2. expand (p 1/2): the image is placed at a random spot of a canvas 1..4 times its size filled
   with the mean colour;
3. random sample crop: one of six modes (keep the image, or crop with a minimum IoU of 0.1, 0.3,
   0.7, 0.9 or none); up to 50 crops of 0.3..1 of each side with aspect 0.5..2; objects whose box
   centre falls strictly inside the crop are kept, clipped to it, and at least one non-crowd object
   must remain. The original's IoU test never rejects a crop (a known upstream bug its author kept
   because fixing it halved mAP), and it is kept here the same way; so is its draw of the crop's
   corner from ``uniform(side - crop, 1.0)`` (numpy's default upper bound);
4. mirror (p 1/2), horizontally;
5. resize to the network input (bilinear, no aspect preservation) and normalise exactly as
   inference does (:func:`yolactpp.preprocess.preprocess`); masks are resized bilinearly and
   binarised at 0.5, as OpenCV's rounding of the original's uint8 masks does;
6. boxes no wider / taller than ``discard_box_width`` / ``discard_box_height`` are dropped.

Images are RGB here (the original works in BGR); every step is channel-symmetric, so the result
is the same. Expand and crop are composed before any pixel is copied (the original materialises
the up-to-16x larger expanded canvas first): same output, a fraction of the memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from yolactpp.config import PreprocessConfig
from yolactpp.preprocess import preprocess
from yolactpp.train.targets import ImageTargets

__all__ = ["DEFAULT_FILL", "AugmentOptions", "Sample", "augment", "photometric_distort", "to_network_input"]

#: The expand canvas colour when the model has no mean (DarkNet): the original always fills with
#: the ImageNet mean, whatever the backbone's normalisation.
DEFAULT_FILL = (123.68, 116.78, 103.94)

#: The original's random-crop modes: None keeps the image, else (min IoU, max IoU).
_CROP_MODES: tuple[tuple[float, float] | None, ...] = (
    None,
    (0.1, float("inf")),
    (0.3, float("inf")),
    (0.7, float("inf")),
    (0.9, float("inf")),
    (float("-inf"), float("inf")),
)
_CROP_TRIALS = 50
_FLT_EPSILON = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class AugmentOptions:
    """Which steps of the training augmentation run, with the original's defaults (all on).

    ``discard_box_width`` / ``discard_box_height`` are compared with each box's size in pixels of
    the network input after resizing, exactly as the original's ``Resize`` does: its config writes
    4 / 550 as if meant relative, but the comparison runs on pixel coordinates, so during training
    only degenerate boxes (under 0.0073 pixel) are dropped. Pass e.g. 4.0 to drop boxes under
    4 pixels.
    """

    photometric_distort: bool = True
    expand: bool = True
    random_sample_crop: bool = True
    random_mirror: bool = True
    discard_box_width: float = 4 / 550
    discard_box_height: float = 4 / 550


@dataclass(frozen=True)
class Sample:
    """An image with its objects, in image pixels: ``image`` H x W x 3 RGB (uint8, or float32 once
    distorted), ``masks`` uint8 {0, 1} [n, H, W], ``boxes`` float64 [n, 4] x1, y1, x2, y2,
    ``labels`` int64 [n] (``-1`` for crowd regions, which come last), ``num_crowds``."""

    image: np.ndarray
    masks: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    num_crowds: int

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


# -- photometric distortion -------------------------------------------------------------------
def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """OpenCV's float RGB -> HSV (H in degrees 0..360, S = range / |max|, V = max), unclipped."""
    r, g, b = np.ascontiguousarray(np.moveaxis(rgb, -1, 0), dtype=np.float32)
    v = np.maximum(np.maximum(r, g), b)
    diff = v - np.minimum(np.minimum(r, g), b)
    s = diff / (np.abs(v) + _FLT_EPSILON)
    scale = 60.0 / (diff + _FLT_EPSILON)
    h = np.where(v == r, (g - b) * scale, np.where(v == g, (b - r) * scale + 120.0, (r - g) * scale + 240.0))
    h[h < 0] += 360.0
    return np.stack([h, s, v], axis=-1).astype(np.float32, copy=False)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """OpenCV's float HSV -> RGB (inverse of :func:`_rgb_to_hsv`; S outside 0..1 extrapolates).

    Written as channel = V - V S clip(min(k, 4 - k), 0, 1) with k = (n + H / 60) mod 6, n = 5, 3, 1
    for R, G, B: per hue sector this is OpenCV's V, V(1 - S), V(1 - S f), V(1 - S(1 - f)).
    """
    h, s, v = np.ascontiguousarray(np.moveaxis(hsv, -1, 0), dtype=np.float32)
    h6 = h / np.float32(60.0)
    vs = v * s
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = np.mod(h6 + np.float32(n), np.float32(6.0))
        weight = np.clip(np.minimum(k, np.float32(4.0) - k), 0.0, 1.0)
        channels.append(v - vs * weight)
    return np.stack(channels, axis=-1).astype(np.float32, copy=False)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The original's ``PhotometricDistort`` on an RGB image -> float32 (values may leave 0..255)."""
    im = image.astype(np.float32)  # a copy: the caller's array is never modified
    if rng.integers(2):
        im += np.float32(rng.uniform(-32.0, 32.0))
    contrast_first = bool(rng.integers(2))

    def contrast(x: np.ndarray) -> np.ndarray:
        if rng.integers(2):
            x *= np.float32(rng.uniform(0.5, 1.5))
        return x

    if contrast_first:
        im = contrast(im)
    saturation = rng.uniform(0.5, 1.5) if rng.integers(2) else None
    hue_shift = rng.uniform(-18.0, 18.0) if rng.integers(2) else None
    # The original always goes through HSV; without a change there the round trip only adds rounding.
    if saturation is not None or hue_shift is not None:
        hsv = _rgb_to_hsv(im)
        if saturation is not None:
            hsv[..., 1] *= np.float32(saturation)
        if hue_shift is not None:
            hue = hsv[..., 0] + np.float32(hue_shift)
            hue[hue > 360.0] -= 360.0
            hue[hue < 0.0] += 360.0
            hsv[..., 0] = hue
        im = _hsv_to_rgb(hsv)
    if not contrast_first:
        im = contrast(im)
    return im


# -- geometry -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Placement:
    """The image's position on a virtual canvas (``canvas_h`` x ``canvas_w``, mean elsewhere)."""

    canvas_h: int
    canvas_w: int
    top: int
    left: int


def _expand(sample: Sample, rng: np.random.Generator) -> tuple[Sample, _Placement]:
    height, width = sample.size
    if rng.integers(2):
        return sample, _Placement(height, width, 0, 0)
    ratio = rng.uniform(1.0, 4.0)
    left = int(rng.uniform(0.0, width * ratio - width))
    top = int(rng.uniform(0.0, height * ratio - height))
    boxes = sample.boxes + np.array([left, top, left, top], dtype=np.float64)
    return replace(sample, boxes=boxes), _Placement(int(height * ratio), int(width * ratio), top, left)


def _iou_with(boxes: np.ndarray, rect: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], rect[:2])
    rb = np.minimum(boxes[:, 2:], rect[2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=1)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    rect_area = (rect[2] - rect[0]) * (rect[3] - rect[1])
    return inter / (area + rect_area - inter)


def _choose_crop(
    sample: Sample, height: int, width: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray] | None:
    """The original's ``RandomSampleCrop`` choice: None (keep all) or (integer rect, kept objects)."""
    boxes = sample.boxes
    crowd = np.arange(len(boxes)) >= len(boxes) - sample.num_crowds
    while True:
        mode = _CROP_MODES[int(rng.integers(len(_CROP_MODES)))]
        if mode is None:
            return None
        min_iou, max_iou = mode
        for _ in range(_CROP_TRIALS):
            w = rng.uniform(0.3 * width, width)
            h = rng.uniform(0.3 * height, height)
            if h / w < 0.5 or h / w > 2:
                continue
            # numpy's uniform(width - w) has the default high=1.0: the original draws between the two
            left = rng.uniform(min(width - w, 1.0), max(width - w, 1.0))
            top = rng.uniform(min(height - h, 1.0), max(height - h, 1.0))
            rect = np.array([int(left), int(top), int(left + w), int(top + h)], dtype=np.float64)
            if len(boxes):
                overlap = _iou_with(boxes, rect)
                if overlap.min() < min_iou and max_iou < overlap.max():  # the original's test (never true)
                    continue
            centers = (boxes[:, :2] + boxes[:, 2:]) / 2.0
            inside = (
                (rect[0] < centers[:, 0])
                & (rect[1] < centers[:, 1])
                & (rect[2] > centers[:, 0])
                & (rect[3] > centers[:, 1])
            )
            if not inside.any() or not (inside & ~crowd).any():
                continue
            return rect.astype(np.int64), inside


def _materialise(sample: Sample, place: _Placement, rect: np.ndarray, fill: np.ndarray) -> Sample:
    """Cut ``rect`` (x1, y1, x2, y2 on the canvas) out of the canvas the image is placed on."""
    x1, y1, x2, y2 = (int(v) for v in rect)
    height, width = sample.size
    out = np.empty((y2 - y1, x2 - x1, 3), dtype=np.float32)
    out[:] = fill
    masks = np.zeros((len(sample.masks), y2 - y1, x2 - x1), dtype=np.uint8)
    # overlap of the image (at top/left on the canvas) with the crop, in canvas coordinates
    cy1, cy2 = max(y1, place.top), min(y2, place.top + height)
    cx1, cx2 = max(x1, place.left), min(x2, place.left + width)
    if cy2 > cy1 and cx2 > cx1:
        src = (slice(cy1 - place.top, cy2 - place.top), slice(cx1 - place.left, cx2 - place.left))
        dst = (slice(cy1 - y1, cy2 - y1), slice(cx1 - x1, cx2 - x1))
        out[dst] = sample.image[src]
        masks[:, dst[0], dst[1]] = sample.masks[:, src[0], src[1]]
    return replace(sample, image=out, masks=masks)


def _crop_objects(sample: Sample, rect: np.ndarray, keep: np.ndarray) -> Sample:
    """Keep the ``keep`` objects with their boxes clipped to ``rect`` and moved to its origin (the
    masks are still full-size: :func:`_materialise` cuts them with the image)."""
    boxes = sample.boxes[keep].copy()
    boxes[:, :2] = np.maximum(boxes[:, :2], rect[:2]) - rect[:2]
    boxes[:, 2:] = np.minimum(boxes[:, 2:], rect[2:]) - rect[:2]
    crowd = np.arange(len(sample.boxes)) >= len(sample.boxes) - sample.num_crowds
    return Sample(sample.image, sample.masks[keep], boxes, sample.labels[keep], int((crowd & keep).sum()))


def _mirror(sample: Sample, rng: np.random.Generator) -> Sample:
    if not rng.integers(2):
        return sample
    width = sample.size[1]
    boxes = sample.boxes.copy()
    boxes[:, 0], boxes[:, 2] = width - sample.boxes[:, 2], width - sample.boxes[:, 0]
    return replace(
        sample,
        image=np.ascontiguousarray(sample.image[:, ::-1]),
        masks=np.ascontiguousarray(sample.masks[:, :, ::-1]),
        boxes=boxes,
    )


def augment(
    sample: Sample,
    rng: np.random.Generator,
    options: AugmentOptions = AugmentOptions(),
    fill: tuple[float, float, float] = DEFAULT_FILL,
) -> Sample:
    """Photometric distortion, expand, random sample crop and mirror (steps 1-4 of the module docs).

    ``fill`` is the expand canvas colour (RGB, 0..255 scale): the model's mean. The result's image is
    float32; the input sample is not modified.
    """
    image = photometric_distort(sample.image, rng) if options.photometric_distort else sample.image.astype(np.float32)
    sample = replace(sample, image=image)
    height, width = sample.size
    place = _Placement(height, width, 0, 0)
    if options.expand:
        sample, place = _expand(sample, rng)
    rect = np.array([0, 0, place.canvas_w, place.canvas_h], dtype=np.int64)
    if options.random_sample_crop:
        chosen = _choose_crop(sample, place.canvas_h, place.canvas_w, rng)
        if chosen is not None:
            rect, keep = chosen
            sample = _crop_objects(sample, rect, keep)
    if place != _Placement(height, width, 0, 0) or rect.tolist() != [0, 0, width, height]:
        sample = _materialise(sample, place, rect, np.asarray(fill, dtype=np.float32))
    if options.random_mirror:
        sample = _mirror(sample, rng)
    return sample


def to_network_input(
    sample: Sample,
    config: PreprocessConfig,
    options: AugmentOptions = AugmentOptions(),
) -> tuple[torch.Tensor, ImageTargets]:
    """Resize to the network input, normalise as inference does, drop too-small boxes.

    Returns the image tensor [3, S, S] float32 and its :class:`ImageTargets` (boxes as fractions of
    the input, masks float {0, 1} [n, S, S], crowds last with label ``-1``).
    """
    size = config.size
    height, width = sample.size
    tensor = preprocess([sample.image], config).tensor[0]
    if len(sample.masks):
        masks = torch.from_numpy(np.ascontiguousarray(sample.masks)).to(torch.float32)[None]
        masks = (F.interpolate(masks, size=(size, size), mode="bilinear", align_corners=False)[0] > 0.5).float()
    else:
        masks = torch.zeros((0, size, size), dtype=torch.float32)
    boxes = sample.boxes * np.array([size / width, size / height, size / width, size / height])
    keep = ((boxes[:, 2] - boxes[:, 0]) > options.discard_box_width) & (
        (boxes[:, 3] - boxes[:, 1]) > options.discard_box_height
    )
    labels = sample.labels[keep]
    keep_t = torch.from_numpy(keep)
    targets = ImageTargets(
        boxes=torch.from_numpy(boxes[keep] / size).to(torch.float32),
        labels=torch.from_numpy(labels.astype(np.int64)),
        masks=masks[keep_t],
        num_crowds=int((labels < 0).sum()),
    )
    return tensor, targets
