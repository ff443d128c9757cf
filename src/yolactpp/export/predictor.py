"""Predicting with an exported file: :func:`load_exported` -> :class:`ExportedModel`.

The model has :class:`~yolactpp.YolactPP`'s ``predict`` / ``iter_predict`` surface and returns
the same :class:`~yolactpp.results.Detections`. Preprocessing, pixel boxes and full-size masks
run on numpy (:mod:`yolactpp.numpy_ops`), so an ``.onnx`` file predicts on onnxruntime without
torch or torchvision installed; a ``.pt2`` package runs on torch's AOTInductor runtime.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from yolactpp._facts import first_line
from yolactpp.batching import as_batch, check_stream_arguments, predict_images, stream_predictions
from yolactpp.config import DetectConfig, ModelConfig
from yolactpp.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    MissingFileError,
)
from yolactpp.export.metadata import ExportFormatError, ExportInfo, read_metadata
from yolactpp.numpy_ops import boxes_to_pixels, preprocess
from yolactpp.predict_options import InvalidOptionError, PredictOptions
from yolactpp.preprocess import ImageInput, to_rgb_array
from yolactpp.results import Detections

if TYPE_CHECKING:
    from yolactpp.tracking import Tracker

__all__ = ["ExportedModel", "load_exported"]

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


class _Options:
    """:class:`~yolactpp.PredictOptions` resolved for an exported model, within its exported limits."""

    def __init__(self, model: ExportedModel, options: PredictOptions | None, kwargs: dict[str, Any]) -> None:
        opts = PredictOptions.build(options, **kwargs)
        info = model.info
        base = model.config.detect
        # Unset limits default to the config's, capped by what the file was exported with.
        defaults = DetectConfig(
            conf_threshold=base.conf_threshold,
            iou_threshold=base.iou_threshold,
            top_k=min(base.top_k, info.top_k),
            max_detections=min(base.max_detections, info.max_detections),
        )
        resolved = opts.resolve(defaults, model.config.class_names)
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
        self.settings = s
        self.score_threshold = resolved.score_threshold
        self.class_mask = np.ones(len(model.config.class_names), dtype=bool)
        if resolved.class_ids is not None:
            self.class_mask[:] = False
            self.class_mask[list(resolved.class_ids)] = True

    def feeds(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        s = self.settings
        return {
            "images": batch,
            "conf_threshold": np.asarray(s.conf_threshold, dtype=np.float32),
            "iou_threshold": np.asarray(s.iou_threshold, dtype=np.float32),
            "top_k": np.asarray(s.top_k, dtype=np.int64),
            "class_mask": self.class_mask,
        }


class ExportedModel:
    """An exported YOLACT / YOLACT++ model (``.onnx`` or ``.pt2``) with ``YolactPP``'s predict surface.

    Build one with :func:`load_exported`. ``config`` is the model config stored in the file,
    ``info`` its export settings, ``path`` the file.
    """

    def __init__(self, runner: Runner, config: ModelConfig, info: ExportInfo, path: Path) -> None:
        self._run = runner
        self.config = config
        self.info = info
        self.path = path

    def __repr__(self) -> str:
        return f"ExportedModel(config={self.config.name!r}, format={self.info.format!r}, path={str(self.path)!r})"

    @property
    def device(self) -> str:
        """Where the file runs: ``"cpu"`` or a CUDA device."""
        return str(getattr(self._run, "device", "cpu"))

    @property
    def dtype(self) -> str:
        """The precision chosen at export: ``"float32"``, ``"float16"`` or ``"int8"``."""
        return self.info.dtype

    @property
    def runtime(self) -> str:
        """What executes the file: ``"onnxruntime"`` or ``"aoti"`` (torch's AOTInductor)."""
        return "onnxruntime" if self.info.format == "onnx" else "aoti"

    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the model predicts; label ``i`` is ``class_names[i]``."""
        return self.config.class_names

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Copy the model's file to ``path`` (e.g. a quantized model that lives in a temporary file)."""
        import shutil

        target = Path(path)
        if target.suffix != self.path.suffix:
            raise InvalidArgumentError(f"{self.path.name} is a {self.path.suffix} file; save it under a name ending in {self.path.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.resolve() != self.path.resolve():
            shutil.copyfile(self.path, target)
        return target

    @overload
    def predict(self, images: ImageInput, options: PredictOptions | None = None, **kwargs: Any) -> Detections: ...

    @overload
    def predict(
        self, images: Sequence[ImageInput], options: PredictOptions | None = None, **kwargs: Any
    ) -> list[Detections]: ...

    def predict(
        self, images: ImageInput | Sequence[ImageInput], options: PredictOptions | None = None, **kwargs: Any
    ) -> Detections | list[Detections]:
        """Detect and segment objects in one image or a list of images; see :meth:`yolactpp.YolactPP.predict`.

        Same options; ``top_k`` and ``max_detections`` may not exceed the exported values.
        """
        batch, single = as_batch(images)
        resolved = _Options(self, options, kwargs)
        if not batch:
            return []
        results = predict_images(batch, functools.partial(self._predict_read, options=resolved))
        return results[0] if single else results

    def iter_predict(
        self,
        images: Iterable[ImageInput],
        batch_size: int = 1,
        options: PredictOptions | None = None,
        *,
        track: bool | Tracker = False,
        on_error: str = "raise",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Predict lazily over any iterable of images, ``batch_size`` at a time.

        Same arguments as :meth:`yolactpp.YolactPP.iter_predict` (``on_error``: ``"raise"``,
        ``"skip"`` or ``"yield"`` for unreadable items; ``track``: ByteTrack ids).
        """
        check_stream_arguments(batch_size, on_error)
        resolved = _Options(self, options, kwargs)
        predict_read = functools.partial(self._predict_read, options=resolved)
        return stream_predictions(images, batch_size, on_error, predict_read, track)

    def input_feeds(
        self, images: Sequence[ImageInput], options: PredictOptions | None = None, **kwargs: Any
    ) -> dict[str, np.ndarray]:
        """The graph inputs for a batch of images and prediction options (e.g. to calibrate a quantizer)."""
        arrays = [to_rgb_array(image) for image in images]
        return _Options(self, options, kwargs).feeds(preprocess(arrays, self.config.preprocess))

    def _predict_read(self, arrays: list[np.ndarray], paths: list[str | None], options: _Options) -> list[Detections]:
        outputs = self._run(options.feeds(preprocess(arrays, self.config.preprocess)))
        results = []
        for i, (array, path) in enumerate(zip(arrays, paths)):
            result = self._detections(outputs, i, array.shape[:2], options)
            result.image = array
            result.path = path
            results.append(result)
        return results

    def _detections(
        self, outputs: dict[str, np.ndarray], i: int, size: tuple[int, int], options: _Options
    ) -> Detections:
        n = min(int(outputs["count"][i]), options.settings.max_detections)

        def rows(name: str) -> np.ndarray:
            return np.ascontiguousarray(outputs[name][i, :n])  # a copy: the padded batch can go

        height, width = size
        mask_iou = rows("mask_iou").astype(np.float32) if "mask_iou" in outputs else None
        result = Detections(
            boxes=boxes_to_pixels(rows("boxes").astype(np.float32), width, height),
            scores=rows("scores").astype(np.float32),
            labels=rows("labels").astype(np.int64),
            names=self.config.class_names,
            image_size=(height, width),
            soft_masks=rows("soft_masks").astype(np.float32),
            box_scores=rows("box_scores").astype(np.float32),
            mask_iou=mask_iou,
        )
        if options.score_threshold > 0:
            result = result[result.scores > options.score_threshold]
        return result


def _onnx_runner(path: Path, threads: int | None, providers: Sequence[str] | None) -> tuple[Runner, dict[str, str]]:
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError(
            "predicting with .onnx files needs onnxruntime: pip install 'yolactpp[onnx]'"
        ) from None
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/InvalidGraph types
        raise ExportFormatError(f"{path} is not a loadable ONNX model: {first_line(exc)}") from None
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    names = [o.name for o in session.get_outputs()]
    inputs = {i.name for i in session.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = session.run(names, {k: v for k, v in feeds.items() if k in inputs})
        return dict(zip(names, values))

    run.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"  # type: ignore[attr-defined]
    run.input_names = inputs  # type: ignore[attr-defined]
    run.output_names = names  # type: ignore[attr-defined]
    return run, metadata


def _check_signature(run: Runner, info: ExportInfo, source: str) -> None:
    inputs = getattr(run, "input_names", None)
    outputs = getattr(run, "output_names", None)
    if inputs is not None and set(inputs) != set(info.inputs):
        raise ExportFormatError(
            f"{source}: graph inputs {sorted(inputs)} do not match its metadata {list(info.inputs)}"
        )
    if outputs is not None and list(outputs) != list(info.outputs):
        raise ExportFormatError(
            f"{source}: graph outputs {list(outputs)} do not match its metadata {list(info.outputs)}"
        )


def load_exported(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    device: str | None = None,
) -> ExportedModel:
    """Load an exported ``.onnx`` (onnxruntime, no torch needed) or ``.pt2`` (AOTInductor) file.

    ``threads`` caps the runtime's intra-op threads. ONNX: ``providers`` are onnxruntime
    execution providers (default CPU). pt2: ``device`` is where the package was compiled for
    (default: the one stored). A file that is not a yolactpp export raises :class:`ExportFormatError`.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"exported model not found: {p}")
    with open(p, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):  # a zip archive: an AOTInductor package
        from yolactpp.export.pt2 import pt2_runner

        run, metadata = pt2_runner(p, threads=threads, device=device)
    else:
        run, metadata = _onnx_runner(p, threads, providers)
    config, info = read_metadata(metadata, str(p))
    _check_signature(run, info, str(p))
    if info.dtype == "int8":
        from yolactpp.quantize.cpu import warn_if_int8_slow

        warn_if_int8_slow()
    return ExportedModel(run, config, info, p)
