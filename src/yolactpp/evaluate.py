"""COCO-style evaluation: box and mask AP of a model on an annotated image set (pycocotools).

Detections are written as the original's two result files are (see :mod:`yolactpp.coco`): box
records scored before mask re-scoring, mask records after. Model classes are matched to the
annotation categories by name; classes the annotations do not have are left out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolactpp.errors import InvalidArgumentError, MissingFileError

if TYPE_CHECKING:
    from yolactpp.predictor import Predictor

__all__ = ["METRIC_NAMES", "CocoEvalResult", "evaluate_coco"]

#: The 12 numbers pycocotools' ``COCOeval.summarize`` reports, in its order.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


@dataclass(frozen=True)
class CocoEvalResult:
    """Box and mask metrics (``METRIC_NAMES`` -> value; -1 where the set has no such objects)."""

    box: dict[str, float]
    mask: dict[str, float]
    num_images: int
    #: The COCO result records that were scored (box records, then mask records).
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def table(self, columns: Iterable[str] = METRIC_NAMES[:6]) -> str:
        """A fixed-width text table of the chosen metrics, in percent."""
        columns = list(columns)
        lines = ["        " + "".join(f"{c:>8}" for c in columns)]
        for name, metrics in (("box", self.box), ("mask", self.mask)):
            cells = "".join(f"{100 * metrics[c]:8.2f}" if metrics[c] >= 0 else f"{'-':>8}" for c in columns)
            lines.append(f"{name:<8}{cells}")
        return "\n".join(lines)


def _load_annotations(annotations: str | os.PathLike[str] | dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    if isinstance(annotations, dict):
        data = annotations
    else:
        path = Path(annotations)
        if not path.is_file():
            raise MissingFileError(f"annotation file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"{path} is not valid JSON: {exc}") from None
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise InvalidArgumentError(f"annotations lack the COCO key(s) {missing}")
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _summarize(gt: Any, records: list[dict[str, Any]], iou_type: str, image_ids: list[Any]) -> dict[str, float]:
    from pycocotools.cocoeval import COCOeval

    if not records:
        return {name: 0.0 for name in METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes([dict(r) for r in records])  # loadRes adds fields in place
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.params.imgIds = image_ids
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(v) for name, v in zip(METRIC_NAMES, evaluator.stats)}


def evaluate_coco(
    model: Predictor,
    annotations: str | os.PathLike[str] | dict[str, Any],
    images: str | os.PathLike[str],
    *,
    limit: int | None = None,
    batch_size: int = 1,
    progress: Callable[[Iterator[Any], int], Iterator[Any]] | None = None,
    **predict_kwargs: Any,
) -> CocoEvalResult:
    """Predict on the images of a COCO annotation file and score boxes and masks.

    ``annotations`` is a COCO instances JSON file (or its loaded dict), ``images`` the folder its
    ``file_name`` entries are relative to. ``limit`` evaluates only the first N images (sorted by
    id). ``progress`` may wrap the result stream (e.g. ``lambda it, n: tqdm(it, total=n)``).
    ``predict_kwargs`` go to :meth:`~yolactpp.predictor.Predictor.predict` (the default keeps every detection, as the
    original's COCO evaluation does).
    """
    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"limit must be >= 1, got {limit}")
    gt = _load_annotations(annotations)
    folder = Path(images)
    if not folder.is_dir():
        raise MissingFileError(f"image folder not found: {folder}")
    image_ids = sorted(gt.getImgIds())[:limit]
    if not image_ids:
        raise InvalidArgumentError("the annotations list no images")
    paths = [folder / gt.imgs[i]["file_name"] for i in image_ids]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise MissingFileError(f"{len(missing)} annotated image(s) not found, e.g. {missing[0]}")

    category_by_name = {c["name"]: c["id"] for c in gt.loadCats(gt.getCatIds())}
    category_ids = {name: category_by_name[name] for name in model.class_names if name in category_by_name}
    if not category_ids:
        raise InvalidArgumentError("no annotation category name matches a class of the model")

    stream: Iterator[Any] = model.iter_predict((str(p) for p in paths), batch_size=batch_size, **predict_kwargs)
    if progress is not None:
        stream = progress(stream, len(paths))
    box_records: list[dict[str, Any]] = []
    mask_records: list[dict[str, Any]] = []
    for image_id, det in zip(image_ids, stream):
        box_records += det.to_coco(image_id, category_ids, kind="bbox")
        mask_records += det.to_coco(image_id, category_ids, kind="segm")
    return CocoEvalResult(
        box=_summarize(gt, box_records, "bbox", image_ids),
        mask=_summarize(gt, mask_records, "segm", image_ids),
        num_images=len(image_ids),
        results=box_records + mask_records,
    )
