"""What ``yolactpp predict`` writes besides the per-image JSON: the COCO dataset file of
``--save-polygons``, the CSV tables of ``--save-csv``, and the plan of every output of a run,
checked before the model loads (never an input, never an existing file without ``--overwrite``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from yolactpp.cli._common import CliError

__all__ = ["RESULT_STEMS", "CocoDataset", "check_outputs", "detections_table", "planned_outputs", "write_csv"]


class CocoDataset:
    """A COCO dataset file (images, categories, annotations with polygon masks): what labelling
    tools such as CVAT ("COCO 1.0") and Label Studio import as pre-annotations."""

    def __init__(self) -> None:
        self.images: list[dict[str, Any]] = []
        self.annotations: list[dict[str, Any]] = []

    def add(self, path: Path, image_id: int, det: Any) -> None:
        import numpy as np

        from yolactpp.polygons import polygon_area

        height, width = det.image_size
        self.images.append({"id": image_id, "file_name": path.name, "width": width, "height": height})
        for record in det.to_coco(image_id, polygons=True, skip_empty=False):
            if not isinstance(record["segmentation"], list):
                continue  # a mask too small to outline
            area = sum(polygon_area(np.reshape(p, (-1, 2))) for p in record["segmentation"])
            self.annotations.append({"id": len(self.annotations) + 1, "iscrowd": 0, "area": round(area, 2), **record})

    def finish(self, class_names: tuple[str, ...], category_ids: tuple[int, ...] | None) -> dict[str, Any]:
        """The dataset dict; categories carry the model's own ids (a fine-tuned model's dataset ids)."""
        from yolactpp.coco import default_category_ids

        ids = default_category_ids(class_names) if category_ids is None else category_ids
        categories = [{"id": int(i), "name": n, "supercategory": ""} for i, n in zip(ids, class_names)]
        return {"images": self.images, "annotations": self.annotations, "categories": categories}


def detections_table(det: Any, **leading: Any) -> Any:
    """``det.to_pandas()`` with constant columns (image, frame, ...) in front."""
    table = det.to_pandas()
    for position, (column, value) in enumerate(leading.items()):
        table.insert(position, column, value)
    return table


def write_csv(tables: list[Any], path: Path) -> None:
    import pandas as pd

    pd.concat(tables, ignore_index=True).to_csv(path, index=False)


#: Stems of the files that gather all images' results; per-image files never take these names.
RESULT_STEMS = ("predictions", "annotations", "detections")


def planned_outputs(
    out: Path, images: list[Path], image_names: list[str], stream_names: list[str], args: argparse.Namespace
) -> list[Path]:
    """Every file (or mask folder) this run will write, before it writes any."""
    planned: list[Path] = []
    for path, name in zip(images, image_names):
        planned.append(out / f"{name}.json")
        if not args.no_plot:
            suffix = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
            planned.append(out / f"{name}{suffix}")
        if args.save_masks:
            planned.append(out / "masks" / name)
    if images:
        planned.append(out / "predictions.json")
        if args.save_polygons:
            planned.append(out / "annotations.json")
        if args.save_csv:
            planned.append(out / "detections.csv")
    for name in stream_names:
        planned.append(out / f"{name}.jsonl")
        if not args.no_plot:
            planned.append(out / f"{name}.mp4")
        if args.save_csv:
            planned.append(out / f"{name}.csv")
    return planned


def check_outputs(out: Path, planned: list[Path], sources: list[Path], args: argparse.Namespace) -> None:
    """Refuse, before the model loads, an output folder that is a file, outputs that would replace
    an input (always), and outputs that exist (unless ``--overwrite``)."""
    from yolactpp.outputs import same_file

    if out.exists() and not out.is_dir():
        raise CliError(f"--output {out} is a file; give a folder for the results")
    for target in planned:
        for source in sources:
            if same_file(target, source):
                raise CliError(
                    f"{target} would replace the input {source}; choose another --output folder (inputs are never "
                    "overwritten)"
                )
    existing = [p for p in planned if p.exists()]
    if existing and not args.overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise CliError(
            f"{existing[0]}{more} exists already; pass --overwrite to replace, or choose another --output folder"
        )
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise CliError(f"cannot create the output folder {out}: {parent} is a file")
