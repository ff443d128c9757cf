"""Typed per-image detection results and their conversions (numpy, JSON, COCO, PNG masks, plots)."""

from __future__ import annotations

import json
import operator
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from yolactpp.errors import InvalidArgumentError, InvalidIndexError, MissingDependencyError

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from yolactpp.coco import CategoryIds, RecordKind

__all__ = ["DetectionArrays", "Detections"]


@dataclass(frozen=True)
class DetectionArrays:
    """Plain numpy view of one image's detections (see :class:`Detections` for the fields)."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    box_scores: np.ndarray
    mask_iou: np.ndarray | None
    #: bool [N, H, W] at the image size, or ``None`` when converted with ``masks=False``.
    masks: np.ndarray | None
    names: tuple[str, ...]
    image_size: tuple[int, int]
    #: int [N] track id of each detection (``-1``: not tracked yet), when predicted with ``track=True``.
    track_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def class_names(self) -> list[str]:
        """Class name of each detection."""
        return [self.names[i] for i in self.labels.tolist()]


def _to_numpy(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    import torch

    t = t.detach().cpu()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()
    return t.numpy()


#: A field of :class:`Detections`: a torch tensor, or a numpy array for an exported model run without torch.
_Array = Union["torch.Tensor", np.ndarray]


def _is_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor (without importing torch when nothing did yet)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "class"


class Detections:
    """Detections of one image, in detection order (descending score before mask re-scoring).

    Attributes (all of length N, on the model's device):

    - ``boxes``: float [N, 4], (x1, y1, x2, y2) in original-image pixels, clamped to the image.
    - ``scores``: float [N], the final score (YOLACT++: detection score x predicted mask IoU).
    - ``labels``: int64 [N], 0-based class index into ``names``.
    - ``class_names``: list of N class names.
    - ``box_scores``: float [N], the detection score before mask re-scoring.
    - ``mask_iou``: float [N] predicted mask IoU (YOLACT++) or ``None``.
    - ``soft_masks``: float [N, Hp, Wp], the cropped soft masks at prototype resolution.
    - ``masks``: bool [N, H, W] at the original image size, built from ``soft_masks`` on first
      access and cached (:meth:`masks_at` builds them at any other size).
    - ``image``: the RGB uint8 [H, W, 3] array the model saw (kept for :meth:`plot`), or ``None``.
    - ``path``: the image file, when the image was given as a path.
    - ``track_ids``: int64 [N] track id of each detection over a video (``-1``: not confirmed
      as a track yet), or ``None`` when not tracked (see ``iter_predict(..., track=True)``).
    - ``category_ids``: the dataset category id of each class (one per name, from the model
      config of a fine-tuned model), or ``None`` for the default ids; :meth:`to_coco` writes them.

    Index with an int, slice, bool tensor or index list to select detections; every field follows.

    Detections from an exported model run without torch (:mod:`yolactpp.export`) hold numpy
    arrays in these fields instead of tensors (on the CPU); everything else works the same, and
    torch is then never imported.
    """

    def __init__(
        self,
        *,
        boxes: _Array,
        scores: _Array,
        labels: _Array,
        names: Sequence[str],
        image_size: tuple[int, int],
        soft_masks: _Array,
        box_scores: _Array | None = None,
        mask_iou: _Array | None = None,
        masks: _Array | None = None,
        image: np.ndarray | None = None,
        path: str | os.PathLike[str] | None = None,
        track_ids: torch.Tensor | np.ndarray | None = None,
        category_ids: Sequence[int] | None = None,
    ) -> None:
        n = int(scores.shape[0])
        for name, t in (("boxes", boxes), ("labels", labels), ("soft_masks", soft_masks), ("track_ids", track_ids)):
            if t is not None and int(t.shape[0]) != n:
                raise InvalidArgumentError(f"{name} has {t.shape[0]} rows but there are {n} scores")
        # Typed as tensors; numpy-backed detections (exported models) hold arrays with the same use.
        self.boxes = cast("torch.Tensor", boxes)
        self.scores = cast("torch.Tensor", scores)
        self.labels = cast("torch.Tensor", labels)
        self.names = tuple(names)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.soft_masks = cast("torch.Tensor", soft_masks)
        self.box_scores = cast("torch.Tensor", scores if box_scores is None else box_scores)
        self.mask_iou = cast("torch.Tensor | None", mask_iou)
        self._masks = cast("torch.Tensor | None", masks)
        self.image = image
        self.path = None if path is None else str(path)
        self.track_ids = cast("torch.Tensor | None", track_ids)
        self.category_ids = None if category_ids is None else tuple(int(i) for i in category_ids)
        if self.category_ids is not None and len(self.category_ids) != len(self.names):
            raise InvalidArgumentError(f"category_ids has {len(self.category_ids)} entries for {len(self.names)} names")

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
    def _numpy_backed(self) -> bool:
        """Whether the fields are numpy arrays (detections of an exported model run without torch)."""
        return isinstance(self.scores, np.ndarray)

    def _upsample(self, height: int, width: int) -> Any:
        if self._numpy_backed:
            from yolactpp.numpy_ops import upsample_masks as upsample_numpy

            return upsample_numpy(_to_numpy(self.soft_masks), height, width)
        from yolactpp.postprocess import upsample_masks

        return upsample_masks(self.soft_masks, height, width)

    @property
    def masks(self) -> torch.Tensor:
        """Binary masks ``[N, H, W]`` at the original image size (computed once, then cached)."""
        if self._masks is None:
            h, w = self.image_size
            self._masks = self._upsample(h, w)
        return self._masks

    def masks_at(self, height: int, width: int) -> torch.Tensor:
        """Binary masks ``[N, height, width]`` built from the soft masks at another size (not cached)."""
        if height < 1 or width < 1:
            raise InvalidArgumentError(f"mask size must be positive, got {height} x {width}")
        if (height, width) == self.image_size:
            return self.masks
        return self._upsample(int(height), int(width))

    def _replace(self, **fields: Any) -> Detections:
        current: dict[str, Any] = dict(
            boxes=self.boxes,
            scores=self.scores,
            labels=self.labels,
            names=self.names,
            image_size=self.image_size,
            soft_masks=self.soft_masks,
            box_scores=self.box_scores,
            mask_iou=self.mask_iou,
            masks=self._masks,
            image=self.image,
            path=self.path,
            track_ids=self.track_ids,
            category_ids=self.category_ids,
        )
        current.update(fields)
        return Detections(**current)

    def __getitem__(self, index: int | slice | torch.Tensor | np.ndarray | Sequence[int]) -> Detections:
        """Select detections by int, slice, bool mask or index list; every field follows."""
        if not isinstance(index, (slice, np.ndarray, list, tuple)) and not _is_tensor(index) and hasattr(index, "__index__"):
            i = operator.index(index)
            if not -len(self) <= i < len(self):
                raise InvalidIndexError(f"detection index {i} out of range for {len(self)} detections")
            index = slice(i, i + 1 if i != -1 else None)
        elif self._numpy_backed and not isinstance(index, slice):
            index = np.asarray(_to_numpy(cast("torch.Tensor", index)) if _is_tensor(index) else index)
            if index.dtype == np.bool_ and index.shape != self.scores.shape:
                raise InvalidIndexError(f"boolean index of shape {tuple(index.shape)} for {len(self)} detections")
            if index.dtype != np.bool_:
                index = index.astype(np.int64).reshape(-1)
        elif not isinstance(index, slice):
            import torch

            index = torch.as_tensor(index, device=self.scores.device)
            if index.dtype == torch.bool and index.shape != self.scores.shape:
                raise InvalidIndexError(f"boolean index of shape {tuple(index.shape)} for {len(self)} detections")
            if index.dtype != torch.bool:
                index = index.long().reshape(-1)

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[index]

        return self._replace(
            boxes=self.boxes[index],
            scores=self.scores[index],
            labels=self.labels[index],
            soft_masks=self.soft_masks[index],
            box_scores=self.box_scores[index],
            mask_iou=pick(self.mask_iou),
            masks=pick(self._masks),
            track_ids=pick(self.track_ids),
        )

    def cpu(self) -> Detections:
        """A copy with every tensor on the CPU."""
        return self.to("cpu")

    def to(self, device: torch.device | str) -> Detections:
        """A copy with every tensor on ``device``."""
        if self._numpy_backed:
            if str(device) != "cpu":
                raise InvalidArgumentError(
                    f"these detections hold numpy arrays (CPU only); cannot move them to {device}"
                )
            return self._replace()

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return self._replace(
            boxes=self.boxes.to(device),
            scores=self.scores.to(device),
            labels=self.labels.to(device),
            soft_masks=self.soft_masks.to(device),
            box_scores=self.box_scores.to(device),
            mask_iou=move(self.mask_iou),
            masks=move(self._masks),
            track_ids=move(self.track_ids),
        )

    # -- selection ----------------------------------------------------------------------------
    def filter(self, classes: str | int | Iterable[str | int] | None = None, min_score: float | None = None) -> Detections:
        """Keep detections of the given classes (names or 0-based ids) with ``score >= min_score``.

        Unknown class names raise ``ValueError`` listing the valid ones.
        """
        from yolactpp.classes import resolve_class_ids

        if self._numpy_backed:
            keep_np = np.ones(len(self), dtype=bool)
            if classes is not None:
                keep_np &= np.isin(self.labels, resolve_class_ids(classes, self.names))
            if min_score is not None:
                keep_np &= self.scores >= min_score
            return self[keep_np]
        import torch

        keep = torch.ones(len(self), dtype=torch.bool, device=self.scores.device)
        if classes is not None:
            ids = torch.tensor(resolve_class_ids(classes, self.names), dtype=self.labels.dtype, device=self.labels.device)
            keep &= torch.isin(self.labels, ids)
        if min_score is not None:
            keep &= self.scores >= min_score
        return self[keep]

    # -- conversions --------------------------------------------------------------------------
    def numpy(self, masks: bool = True) -> DetectionArrays:
        """All fields as numpy arrays; ``masks=False`` skips building the full-size masks."""
        return DetectionArrays(
            boxes=_to_numpy(self.boxes),
            scores=_to_numpy(self.scores),
            labels=_to_numpy(self.labels),
            box_scores=_to_numpy(self.box_scores),
            mask_iou=None if self.mask_iou is None else _to_numpy(self.mask_iou),
            masks=_to_numpy(self.masks) if masks else None,
            names=self.names,
            image_size=self.image_size,
            track_ids=None if self.track_ids is None else _to_numpy(self.track_ids),
        )

    def summary(self, decimals: int | None = None) -> list[dict[str, Any]]:
        """One JSON-ready row per detection: ``class_id``, ``class_name``, ``score``, ``box``
        (x1, y1, x2, y2 pixels), ``box_score``, for YOLACT++ ``mask_iou`` and, when tracked,
        ``track_id`` (``None`` for a detection not confirmed as a track yet).

        ``decimals`` rounds the floats (``None`` keeps full precision).
        """

        def r(x: float) -> float:
            return x if decimals is None else round(x, decimals)

        arrays = self.numpy(masks=False)
        rows = []
        for i in range(len(arrays)):
            label = int(arrays.labels[i])
            row: dict[str, Any] = {
                "class_id": label,
                "class_name": self.names[label],
                "score": r(float(arrays.scores[i])),
                "box": [r(float(v)) for v in arrays.boxes[i]],
                "box_score": r(float(arrays.box_scores[i])),
            }
            if arrays.mask_iou is not None:
                row["mask_iou"] = r(float(arrays.mask_iou[i]))
            if arrays.track_ids is not None:
                track = int(arrays.track_ids[i])
                row["track_id"] = track if track >= 0 else None
            rows.append(row)
        return rows

    def to_dict(self, masks: bool = True, decimals: int | None = None) -> dict[str, Any]:
        """A JSON-ready dict: ``path``, ``image_size`` (height, width) and ``detections``, the
        :meth:`summary` rows plus, with ``masks=True``, each mask as COCO RLE under ``"mask"``."""
        rows = self.summary(decimals)
        if masks and rows:
            from yolactpp.coco import encode_masks_rle

            for row, rle in zip(rows, encode_masks_rle(_to_numpy(self.masks))):
                row["mask"] = rle
        h, w = self.image_size
        return {"path": self.path, "image_size": {"height": h, "width": w}, "detections": rows}

    def to_json(self, masks: bool = True, decimals: int | None = None, indent: int | None = None) -> str:
        """:meth:`to_dict` serialised as a JSON string."""
        return json.dumps(self.to_dict(masks=masks, decimals=decimals), indent=indent)

    def to_coco(
        self,
        image_id: int | str,
        category_ids: CategoryIds | None = None,
        *,
        kind: RecordKind = "both",
        skip_empty: bool = True,
        polygons: bool = False,
        tolerance: float = 1.0,
    ) -> list[dict[str, Any]]:
        """COCO result records (``image_id``, ``category_id``, ``bbox`` [x, y, w, h], ``score``,
        ``segmentation`` RLE) as the original writes them; see :func:`yolactpp.coco.coco_records`.

        ``category_ids`` defaults to the ids the model was trained with (:attr:`category_ids`; a
        fine-tuned model's dataset ids), else the COCO ids for the 80 COCO classes and ``1..N``.
        ``polygons=True`` writes each ``segmentation`` as COCO polygons (see :meth:`polygons`;
        ``tolerance`` in pixels) instead of RLE, for labelling tools.
        """
        from yolactpp.coco import coco_records

        scores = self.box_scores if kind == "bbox" else self.scores  # the original's two result files
        return coco_records(
            self.names,
            _to_numpy(self.labels),
            _to_numpy(self.boxes),
            _to_numpy(scores),
            lambda index: _to_numpy(self[index].masks),
            image_id,
            self.category_ids if category_ids is None else category_ids,
            kind=kind,
            skip_empty=skip_empty,
            polygons=polygons,
            tolerance=tolerance,
        )

    def polygons(self, tolerance: float = 1.0) -> list[list[np.ndarray]]:
        """Per detection, the outer outlines of its mask: a list of float ``[K, 2]`` (x, y) arrays
        in image pixels, one per separate part; holes are filled, as COCO polygons do.

        ``tolerance`` (pixels) simplifies the outlines (``0``: every traced point). Needs the
        ``polygons`` extra (contourpy and shapely); see :mod:`yolactpp.polygons`.
        """
        from yolactpp.polygons import check_tolerance, mask_to_polygons

        check_tolerance(tolerance)
        masks = self.numpy().masks
        assert masks is not None
        return [mask_to_polygons(mask, tolerance) for mask in masks]

    def to_supervision(self) -> Any:
        """A ``supervision.Detections`` (xyxy, mask, confidence, class_id, tracker_id when tracked,
        and ``data["class_name"]``) for supervision's annotators, zones and trackers.

        Needs the ``supervision`` extra (imported here, on first use).
        """
        try:
            import supervision as sv
        except ImportError:
            raise MissingDependencyError(
                "to_supervision needs supervision: pip install 'yolactpp[supervision]' (or pip install supervision)"
            ) from None
        arrays = self.numpy()
        return sv.Detections(
            xyxy=arrays.boxes.astype(np.float32).reshape(-1, 4),
            mask=arrays.masks,
            confidence=arrays.scores.astype(np.float32),
            class_id=arrays.labels.astype(int),
            tracker_id=None if arrays.track_ids is None else arrays.track_ids.astype(int),
            data={"class_name": np.array(arrays.class_names, dtype=str).reshape(-1)},
        )

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` with one row per detection: ``class_id``, ``class_name``,
        ``score``, ``box_score``, ``mask_iou`` (YOLACT++, else missing), ``x1``, ``y1``, ``x2``,
        ``y2`` (pixels), ``area`` (mask pixels) and, when tracked, ``track_id`` (missing when not
        confirmed yet).

        Needs the ``pandas`` extra (imported here, on first use).
        """
        try:
            import pandas as pd
        except ImportError:
            raise MissingDependencyError(
                "to_pandas needs pandas: pip install 'yolactpp[pandas]' (or pip install pandas)"
            ) from None
        arrays = self.numpy()
        assert arrays.masks is not None
        n = len(arrays)
        boxes = arrays.boxes.astype(np.float64).reshape(-1, 4)
        columns: dict[str, Any] = {
            "class_id": arrays.labels.astype(np.int64),
            "class_name": pd.Series(arrays.class_names, dtype="string"),
            "score": arrays.scores.astype(np.float64),
            "box_score": arrays.box_scores.astype(np.float64),
            "mask_iou": np.full(n, np.nan) if arrays.mask_iou is None else arrays.mask_iou.astype(np.float64),
            "x1": boxes[:, 0],
            "y1": boxes[:, 1],
            "x2": boxes[:, 2],
            "y2": boxes[:, 3],
            "area": arrays.masks.sum(axis=(1, 2)).astype(np.int64),
        }
        if arrays.track_ids is not None:
            columns["track_id"] = pd.array([int(t) if t >= 0 else None for t in arrays.track_ids], dtype="Int64")
        return pd.DataFrame(columns)

    # -- files and pictures -------------------------------------------------------------------
    def save_masks(self, directory: str | os.PathLike[str], prefix: str | None = None) -> list[Path]:
        """Write one black/white PNG per detection, ``<prefix><index>_<class>.png``; returns the paths.

        ``prefix`` defaults to the image file's stem plus ``_`` (empty without a path).
        """
        from PIL import Image

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if prefix is None:
            prefix = f"{Path(self.path).stem}_" if self.path else ""
        width = max(3, len(str(max(len(self) - 1, 0))))
        paths = []
        masks = _to_numpy(self.masks) if len(self) else np.zeros((0, *self.image_size), dtype=bool)
        for i, (mask, name) in enumerate(zip(masks, self.class_names)):
            path = out / f"{prefix}{i:0{width}d}_{_safe_name(name)}.png"
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
            paths.append(path)
        return paths

    def plot(
        self,
        image: Any = None,
        *,
        masks: bool = True,
        boxes: bool = True,
        labels: bool = True,
        scores: bool = True,
        alpha: float = 0.45,
        line_width: int | None = None,
        font_size: int | None = None,
    ) -> Image.Image:
        """The image with masks blended in, boxes and "class score" labels drawn; a PIL image.

        ``image`` defaults to the one the detections came from; pass one (any input ``predict``
        accepts) of the same size to draw on something else. Each class has a fixed colour; tracked
        detections are coloured by track and labelled ``#<track id> class score``.
        """
        from yolactpp.plotting import draw_detections
        from yolactpp.preprocess import load_image, to_rgb_array

        if image is None:
            if self.image is not None:
                image = self.image
            elif self.path is not None:
                image = load_image(self.path)
            else:
                raise InvalidArgumentError("these detections carry no image; pass one: plot(image)")
        rgb = to_rgb_array(image)
        if rgb.shape[:2] != self.image_size:
            raise InvalidArgumentError(
                f"image is {rgb.shape[0]} x {rgb.shape[1]} (h x w) but the detections are for {self.image_size}"
            )
        arrays = self.numpy(masks=masks)
        return draw_detections(
            rgb,
            boxes=arrays.boxes,
            labels=arrays.labels,
            scores=arrays.scores,
            names=self.names,
            masks=arrays.masks,
            show_boxes=boxes,
            show_labels=labels,
            show_scores=scores,
            alpha=alpha,
            line_width=line_width,
            font_size=font_size,
            track_ids=arrays.track_ids,
        )
