"""Predicting with an exported file: :func:`load_exported` -> :class:`ExportedModel`.

The model is a :class:`~yolactpp.predictor.Predictor` (``YolactPP``'s ``predict`` /
``iter_predict`` surface, the same :class:`~yolactpp.results.Detections`); its inference step
feeds the exported graph through a :mod:`yolactpp.runtime` (onnxruntime or AOTInductor).
Preprocessing, pixel boxes and full-size masks run on numpy (:mod:`yolactpp.numpy_ops`), so an
``.onnx`` file predicts on onnxruntime without torch or torchvision installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from typing_extensions import override

from yolactpp.config import DetectConfig, ModelConfig
from yolactpp.errors import InvalidArgumentError
from yolactpp.export.metadata import ExportFormatError, ExportInfo, read_metadata
from yolactpp.numpy_ops import boxes_to_pixels, preprocess
from yolactpp.predict_options import InvalidOptionError, PredictOptions, ResolvedOptions
from yolactpp.predictor import Predictor, above_score
from yolactpp.preprocess import ImageInput, to_rgb_array
from yolactpp.results import Detections
from yolactpp.runtime import Runtime, open_runtime

__all__ = ["ExportedModel", "load_exported"]


class ExportedModel(Predictor):
    """An exported YOLACT / YOLACT++ model (``.onnx``, int8 ``.onnx`` or ``.pt2``) with ``YolactPP``'s predict surface.

    Build one with :func:`load_exported` (or :func:`yolactpp.load`). ``config`` is the model config
    stored in the file, ``info`` its export settings, ``path`` the file, ``runtime`` what runs it.
    """

    def __init__(self, runtime: Runtime, config: ModelConfig, info: ExportInfo, path: Path) -> None:
        self._runtime = runtime
        self.config = config
        self.info = info
        self.path = path

    def __repr__(self) -> str:
        return f"ExportedModel(config={self.config.name!r}, format={self.info.format!r}, path={str(self.path)!r})"

    @property
    def device(self) -> str:
        """Where the file runs: ``"cpu"`` or a CUDA device."""
        return self._runtime.device

    @property
    def dtype(self) -> str:
        """The precision chosen at export: ``"float32"``, ``"float16"`` or ``"int8"``."""
        return self.info.dtype

    @property
    @override
    def runtime(self) -> str:
        """What executes the file: ``"onnxruntime"`` or ``"aoti"`` (torch's AOTInductor)."""
        return self._runtime.name

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Copy the model's file to ``path`` (e.g. a quantized model that lives in a temporary file);
        an existing file is replaced only with ``overwrite=True``."""
        import shutil

        from yolactpp.outputs import check_output_file, same_file, staged_file

        target = Path(path)
        if target.suffix != self.path.suffix:
            raise InvalidArgumentError(f"{self.path.name} is a {self.path.suffix} file; save it under a name ending in {self.path.suffix}")
        if same_file(target, self.path):
            return target
        check_output_file(target, overwrite=overwrite, what="copy")
        with staged_file(target) as staging:
            shutil.copyfile(self.path, staging)
        return target

    @override
    def _resolve_options(self, options: PredictOptions | None, kwargs: dict[str, Any]) -> ResolvedOptions:
        """As for the eager model, with unset limits capped by the file's and larger ones refused."""
        info, base = self.info, self.config.detect
        defaults = DetectConfig(
            conf_threshold=base.conf_threshold,
            iou_threshold=base.iou_threshold,
            top_k=min(base.top_k, info.top_k),
            max_detections=min(base.max_detections, info.max_detections),
        )
        resolved = PredictOptions.build(options, **kwargs).resolve(defaults, self.config.class_names)
        s = resolved.settings
        if s.top_k > info.top_k:
            raise InvalidOptionError(
                f"top_k={s.top_k} is above the {info.top_k} this file was exported with (export again with a larger top_k)"
            )
        if s.max_detections > info.max_detections:
            raise InvalidOptionError(
                f"max_detections={s.max_detections} is above the {info.max_detections} this file was exported with "
                "(export again with a larger max_detections)"
            )
        return resolved

    def _feeds(self, batch: np.ndarray, options: ResolvedOptions) -> dict[str, np.ndarray]:
        s = options.settings
        class_mask = np.ones(len(self.config.class_names), dtype=bool)
        if options.class_ids is not None:
            class_mask[:] = False
            class_mask[list(options.class_ids)] = True
        values = {
            "images": batch,
            "conf_threshold": np.asarray(s.conf_threshold, dtype=np.float32),
            "iou_threshold": np.asarray(s.iou_threshold, dtype=np.float32),
            "top_k": np.asarray(s.top_k, dtype=np.int64),
            "class_mask": class_mask,
        }
        return {name: values[name] for name in self.info.inputs}

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One run of the graph: named inputs in, named outputs out."""
        return self._runtime.run({name: feeds[name] for name in self.info.inputs}, self.info.outputs)

    def input_feeds(
        self, images: Sequence[ImageInput], options: PredictOptions | None = None, **kwargs: Any
    ) -> dict[str, np.ndarray]:
        """The graph inputs for a batch of images and prediction options (e.g. to calibrate a quantizer)."""
        arrays = [to_rgb_array(image) for image in images]
        return self._feeds(preprocess(arrays, self.config.preprocess), self._resolve_options(options, kwargs))

    @override
    def _infer(self, arrays: list[np.ndarray], options: ResolvedOptions) -> list[Detections]:
        outputs = self._run(self._feeds(preprocess(arrays, self.config.preprocess), options))
        return [
            above_score(self._detections(outputs, i, array.shape[:2], options), options.score_threshold)
            for i, array in enumerate(arrays)
        ]

    def _detections(
        self, outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], options: ResolvedOptions
    ) -> Detections:
        n = min(int(outputs["count"][i]), options.settings.max_detections)

        def rows(name: str) -> np.ndarray:
            return np.ascontiguousarray(outputs[name][i, :n])  # a copy: the padded batch can go

        height, width = size
        mask_iou = rows("mask_iou").astype(np.float32) if "mask_iou" in outputs else None
        return Detections(
            boxes=boxes_to_pixels(rows("boxes").astype(np.float32), width, height),
            scores=rows("scores").astype(np.float32),
            labels=rows("labels").astype(np.int64),
            names=self.config.class_names,
            image_size=(height, width),
            soft_masks=rows("soft_masks").astype(np.float32),
            box_scores=rows("box_scores").astype(np.float32),
            mask_iou=mask_iou,
            category_ids=self.config.category_ids,
        )


def _check_signature(runtime: Runtime, config: ModelConfig, info: ExportInfo, source: str) -> None:
    """The metadata must describe the graph: input and output names, and the input image size."""
    shape = runtime.image_shape
    size = config.preprocess.size
    if shape is not None and len(shape) == 4 and list(shape[2:]) != [size, size]:
        raise ExportFormatError(
            f"{source}: the metadata says preprocess.size {size} but the graph takes {shape[2]} x {shape[3]} images "
            "(altered metadata?); export the model again"
        )
    if runtime.input_names is not None and set(runtime.input_names) != set(info.inputs):
        raise ExportFormatError(
            f"{source}: graph inputs {sorted(runtime.input_names)} do not match its metadata {list(info.inputs)}"
        )
    if runtime.output_names is not None and list(runtime.output_names) != list(info.outputs):
        raise ExportFormatError(
            f"{source}: graph outputs {list(runtime.output_names)} do not match its metadata {list(info.outputs)}"
        )


def load_exported(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    device: str | None = None,
) -> ExportedModel:
    """Load an exported ``.onnx`` (onnxruntime, no torch needed; int8 files too) or ``.pt2`` (AOTInductor) file.

    ``threads`` caps the runtime's intra-op threads, for this model only. ``device``: ``"cpu"``,
    ``"cuda"`` or ``"cuda:N"`` (ONNX default cpu; pt2 default: the one stored). ONNX:
    ``providers`` names onnxruntime execution providers instead. A file that is not a yolactpp
    export raises :class:`ExportFormatError`; an int8 file on a CPU without int8 dot-product
    instructions warns (:class:`~yolactpp.runtime.int8.SlowInt8Warning`).
    """
    p = Path(path)
    if p.is_dir():
        raise ExportFormatError(
            f"{p} is a folder; load_exported reads one exported .onnx or .pt2 file (a save_pretrained folder "
            "loads with YolactPP.from_pretrained)"
        )
    if p.is_file() and p.suffix.lower() in (".pth", ".pt", ".safetensors", ".ckpt"):
        raise ExportFormatError(
            f"{p} is a weights file, not an exported model; load it with YolactPP.from_pretrained, or export it "
            "first: yolactpp export -m WEIGHTS -o FILE.onnx"
        )
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise InvalidArgumentError(f"threads must be a whole number >= 1, got {threads!r}")
    runtime = open_runtime(p, device=device, threads=threads, providers=providers)
    config, info = read_metadata(runtime.metadata, str(p))
    _check_signature(runtime, config, info, str(p))
    if info.dtype == "int8":
        from yolactpp.export.metadata import quantized_weight_bits
        from yolactpp.runtime.int8 import warn_if_int8_slow

        warn_if_int8_slow(weight_bits=quantized_weight_bits(runtime.metadata))
    return ExportedModel(runtime, config, info, p)
