"""The predictor contract: what every runtime of a YOLACT / YOLACT++ model shares.

:class:`Predictor` holds ``predict`` / ``iter_predict`` (one batch, or a lazy stream with the
``on_error`` policy and tracking, both from :mod:`yolactpp.batching`), option resolution and the
score filter. A runtime supplies only its inference step, :meth:`Predictor._infer` (RGB arrays in,
one :class:`~yolactpp.results.Detections` per image out), and may narrow option resolution (an
exported file caps ``top_k`` and ``max_detections`` at what it was exported with).

The runtimes: :class:`yolactpp.YolactPP` (eager torch) and
:class:`yolactpp.export.ExportedModel` (onnxruntime, AOTInductor, int8 ONNX). Torch-free, so an
``.onnx`` predictor runs without torch installed. :func:`yolactpp.load` returns the right one for a
file, folder or name.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from yolactpp.batching import as_batch, check_stream_arguments, predict_images, stream_predictions
from yolactpp.config import ModelConfig
from yolactpp.errors import OnError, PredictionFailure
from yolactpp.predict_options import PredictOptions, ResolvedOptions
from yolactpp.preprocess import ImageInput
from yolactpp.results import Detections

if TYPE_CHECKING:
    from yolactpp.tracking import Tracker

__all__ = ["Predictor", "above_score"]


def above_score(result: Detections, score_threshold: float) -> Detections:
    """The detections whose final score is strictly above ``score_threshold`` (0 keeps all)."""
    if score_threshold > 0:
        return result[result.scores > score_threshold]
    return result


class Predictor:
    """``predict`` / ``iter_predict`` over one inference step; see the module notes.

    A subclass sets ``config`` (its :class:`~yolactpp.ModelConfig`: class names, detection
    defaults, preprocessing) and implements :meth:`_infer`.
    """

    config: ModelConfig

    @property
    def runtime(self) -> str:
        """What executes the model: ``"torch"``, ``"onnxruntime"`` or ``"aoti"``."""
        raise NotImplementedError

    # -- what a runtime supplies -------------------------------------------------------------------
    def _infer(self, arrays: list[np.ndarray], options: ResolvedOptions) -> list[Detections]:
        """Predict a batch of RGB uint8 arrays ``[H, W, 3]`` (at least one): one result per array,
        score filter applied (:func:`above_score`)."""
        raise NotImplementedError

    def _resolve_options(self, options: PredictOptions | None, kwargs: dict[str, Any]) -> ResolvedOptions:
        """The options of one call, checked once before any image is read, filled from the config."""
        return PredictOptions.build(options, **kwargs).resolve(self.config.detect, self.config.class_names)

    # -- shared surface ----------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        """The names of the classes the model predicts; label ``i`` is ``class_names[i]``."""
        return self.config.class_names

    def _predict_read(self, arrays: list[np.ndarray], paths: list[str | None], options: ResolvedOptions) -> list[Detections]:
        """Predict images already read; each result keeps its image and path."""
        if not arrays:
            return []
        results = self._infer(arrays, options)
        for result, array, path in zip(results, arrays, paths, strict=True):
            result.image = array
            result.path = path
        return results

    @overload
    def predict(self, images: ImageInput, options: PredictOptions | None = None, **kwargs: Any) -> Detections: ...

    @overload
    def predict(
        self, images: Sequence[ImageInput], options: PredictOptions | None = None, **kwargs: Any
    ) -> list[Detections]: ...

    def predict(
        self,
        images: ImageInput | Sequence[ImageInput],
        options: PredictOptions | None = None,
        **kwargs: Any,
    ) -> Detections | list[Detections]:
        """Detect and segment objects in one image or a list of images (run as one batch).

        Images of different sizes can share a batch (each is resized to the square input).
        ``options`` (a :class:`~yolactpp.PredictOptions`) says how detections are chosen; keyword
        arguments are its fields (``score_threshold``, ``top_k``, ``conf_threshold``,
        ``iou_threshold``, ``max_detections``, ``classes``) and build one, or override fields of
        ``options``. Unset thresholds come from the model config (200, 0.05, 0.5, 100);
        ``score_threshold=0`` keeps everything the original's ``postprocess(..., score_threshold=0)``
        returns. Unknown class names raise ``ValueError``. An exported file refuses a ``top_k`` or
        ``max_detections`` above the values it was exported with.
        """
        batch, single = as_batch(images)
        resolved = self._resolve_options(options, kwargs)
        if not batch:
            return []
        results = predict_images(batch, functools.partial(self._predict_read, options=resolved))
        return results[0] if single else results

    @overload
    def iter_predict(
        self,
        images: Iterable[ImageInput],
        batch_size: int = 1,
        options: PredictOptions | None = None,
        *,
        track: bool | Tracker = False,
        on_error: Literal["raise", "skip"] = "raise",
        **kwargs: Any,
    ) -> Iterator[Detections]: ...

    @overload
    def iter_predict(
        self,
        images: Iterable[ImageInput],
        batch_size: int = 1,
        options: PredictOptions | None = None,
        *,
        track: bool | Tracker = False,
        on_error: Literal["yield"],
        **kwargs: Any,
    ) -> Iterator[Detections | PredictionFailure]: ...

    def iter_predict(
        self,
        images: Iterable[ImageInput],
        batch_size: int = 1,
        options: PredictOptions | None = None,
        *,
        track: bool | Tracker = False,
        on_error: OnError = "raise",
        **kwargs: Any,
    ) -> Iterator[Detections] | Iterator[Detections | PredictionFailure]:
        """Predict over any iterable of images (a list, a generator, video frames), lazily.

        Images are pulled from ``images`` ``batch_size`` at a time, run as one batch (sizes may
        differ) and yielded one :class:`Detections` per image, in input order, so an endless
        stream works in constant memory. ``options`` and ``kwargs`` are :meth:`predict`'s; they
        and ``batch_size`` are checked here, before the first image is read.

        ``on_error`` says what happens to an item that cannot be read (a corrupt, missing or
        oversized image file, an array of the wrong shape: an error for which
        :func:`yolactpp.errors.is_item_error` holds): ``"raise"`` (default) ends the stream with
        that error; ``"skip"`` leaves the item out with a :class:`~yolactpp.YolactppWarning` naming
        it; ``"yield"`` yields a :class:`~yolactpp.PredictionFailure` (its position, path and
        error) in its place, so results stay aligned with the inputs. The other items of its batch
        are predicted either way. Other exceptions (library bugs, out of memory, an error raised by
        the ``images`` iterator itself) always propagate.

        ``track=True`` treats the images as consecutive frames of one video and gives every
        detection a ``track_id`` (ByteTrack, the ``track`` extra); pass a
        :class:`yolactpp.tracking.Tracker` instead to choose its settings (e.g. the frame rate).
        """
        check_stream_arguments(batch_size, on_error)
        resolved = self._resolve_options(options, kwargs)
        predict_read = functools.partial(self._predict_read, options=resolved)
        return stream_predictions(images, batch_size, on_error, predict_read, track)
