"""``Predictor``: the callable class ``Dataset.map_batches`` runs in each actor.

It loads the model once, in the actor, and turns each batch of images into result rows
(:mod:`yolactpp.integrations.ray.schema`). An image that cannot be read or predicted (an error
for which :func:`yolactpp.errors.is_item_error` holds) becomes an error row naming it, so one bad
file never fails the job; any other exception is a bug and fails it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from yolactpp._facts import MODEL_DTYPES
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError, is_item_error
from yolactpp.integrations.ray.schema import detection_row, error_row, rows_to_table
from yolactpp.predict_options import PredictOptions

if TYPE_CHECKING:
    import torch

    from yolactpp.predictor import Predictor as ModelPredictor

__all__ = ["Predictor"]



def _torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in MODEL_DTYPES:
        raise InvalidArgumentError(f"dtype must be one of {', '.join(MODEL_DTYPES)} (or a torch.dtype), got {dtype!r}")
    return getattr(torch, dtype)


def _column_lists(batch: Any) -> dict[str, Sequence[Any]]:
    """A numpy-format batch (dict of arrays) or a pandas DataFrame -> {column: values}."""
    if isinstance(batch, Mapping):
        return dict(batch)
    if hasattr(batch, "columns") and hasattr(batch, "to_dict"):  # pandas
        return {str(c): batch[c].to_numpy() for c in batch.columns}
    raise InvalidArgumentTypeError(
        f"Predictor takes numpy or pandas batches, got {type(batch).__name__}; "
        "use map_batches(..., batch_format='numpy')"
    )


def _digest(value: Any) -> str:
    data = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)
    return "sha1:" + hashlib.sha1(data).hexdigest()[:16]


def _message(exc: BaseException, label: str) -> str:
    from yolactpp.preprocess import InvalidImageError

    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, InvalidImageError):  # name the kind of failure when the message does not
        text = f"{type(exc).__name__}: {text}"
    return text if label in text else f"{label}: {text}"


class Predictor:
    """Callable class for ``ray.data.Dataset.map_batches``: one model per actor, one row per image.

    ``model`` is anything :func:`yolactpp.load` loads (a zoo name, an original ``.pth``, an
    own-format folder, ``"owner/name"``, or an exported ``.onnx`` / int8 ``.onnx`` / ``.pt2`` file;
    ``config`` and ``class_names`` as for :meth:`YolactPP.from_pretrained`), loaded in the actor on
    ``device`` (default: CUDA when the actor has a GPU, else the CPU; an exported file: as
    :func:`yolactpp.load`) in ``dtype`` (an exported file keeps its own). ``num_threads`` sets the
    actor's torch CPU threads, or an exported file's runtime threads. ``options`` (a :class:`~yolactpp.PredictOptions`; keywords build or override
    one) say how detections are chosen; they are checked once, when the actor starts.

    Batches (``batch_format="numpy"`` or pandas) are read from the first column present of:

    - ``"bytes"``: encoded image files (``ray.data.read_binary_files``), decoded as
      :func:`yolactpp.preprocess.load_image` opens a file (EXIF orientation applied);
    - ``"image"``: decoded H x W x 3 (or H x W) uint8 arrays (``ray.data.read_images``);
    - ``"path"``: image files the actor opens itself.

    ``"path"`` and ``"image_id"`` columns are carried into the rows. Returns a ``pyarrow.Table``
    with :data:`~yolactpp.integrations.ray.RESULT_SCHEMA`, one row per input row, in order.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        config: str | None = None,
        class_names: Sequence[str] | None = None,
        device: str | None = None,
        dtype: str | torch.dtype = "float32",
        num_threads: int | None = None,
        options: PredictOptions | None = None,
        **option_kwargs: Any,
    ) -> None:
        from yolactpp.loading import is_exported_file, load

        if num_threads is not None and (
            isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
        ):
            raise InvalidArgumentError(f"num_threads must be an integer >= 1, got {num_threads!r}")
        if is_exported_file(model):  # onnxruntime / AOTInductor: threads belong to the model's runtime
            exported_dtype = None if dtype in ("float32", None) or str(dtype) == "torch.float32" else dtype
            self.model: ModelPredictor = load(
                model, config=config, class_names=class_names, device=device, dtype=exported_dtype, threads=num_threads
            )
        else:
            import torch

            if num_threads is not None:
                torch.set_num_threads(num_threads)  # this actor's process only
            target = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
            self.model = load(model, config=config, class_names=class_names, device=target, dtype=_torch_dtype(dtype))
        self.options = PredictOptions.build(options, **option_kwargs)
        self.model.predict([], self.options)  # checks the class names now, not on the first batch

    def __call__(self, batch: Any) -> pa.Table:
        """Predict one batch; returns its result rows (see the class docs)."""
        columns = _column_lists(batch)
        source = next((name for name in ("bytes", "image", "path") if name in columns), None)
        if source is None:
            raise InvalidArgumentError(
                f"batch has columns {sorted(columns)}; expected 'bytes' (read_binary_files), "
                "'image' (read_images) or 'path' (image files)"
            )
        values = columns[source]
        paths: list[str | None] = [None] * len(values)
        if "path" in columns:
            paths = [None if p is None else str(p) for p in columns["path"]]
        if "image_id" in columns:
            ids = [str(i) for i in columns["image_id"]]
        else:
            ids = [p if p is not None else _digest(v) for p, v in zip(paths, values)]

        rows: list[dict[str, Any] | None] = [None] * len(values)
        arrays: dict[int, np.ndarray] = {}
        for i, value in enumerate(values):
            try:
                arrays[i] = self._to_array(source, value, paths[i] or ids[i])
            except Exception as exc:  # an unreadable image becomes an error row, never a failed job
                if not is_item_error(exc):
                    raise  # a bug: fail the job with its traceback
                rows[i] = error_row(ids[i], paths[i], _message(exc, paths[i] or ids[i]))
        for i, row in self._predict(arrays, ids, paths).items():
            rows[i] = row
        return rows_to_table([row for row in rows if row is not None])

    @staticmethod
    def _to_array(source: str, value: Any, label: str) -> np.ndarray:
        from yolactpp.preprocess import decode_image, load_image, to_rgb_array

        if source == "bytes":
            return to_rgb_array(decode_image(value, label))
        if source == "path":
            return to_rgb_array(load_image(value))
        return to_rgb_array(np.asarray(value))

    def _predict(self, arrays: dict[int, np.ndarray], ids: list[str], paths: list[str | None]) -> dict[int, dict[str, Any]]:
        """Rows of the readable images: one batched predict, or image by image if the batch fails."""
        if not arrays:
            return {}
        order = list(arrays)
        try:
            results = self.model.predict([arrays[i] for i in order], self.options)
        except Exception:  # isolate the image that broke the batch; the others still get results
            rows = {}
            for i in order:
                try:
                    det = self.model.predict(arrays[i], self.options)
                except Exception as exc:
                    if not is_item_error(exc):
                        raise
                    label = paths[i] or ids[i]
                    rows[i] = error_row(ids[i], paths[i], _message(exc, label), arrays[i].shape[:2])
                else:
                    rows[i] = detection_row(det, ids[i], paths[i])
            return rows
        return {i: detection_row(det, ids[i], paths[i]) for i, det in zip(order, results)}
