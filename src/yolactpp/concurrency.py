"""Keeping predictions and conversions of one model apart.

One :class:`~yolactpp.YolactPP` may serve ``predict`` / ``iter_predict`` from many threads at once
(inference only reads the weights). Converting it (``model.to(...)``, ``.cuda()``, ``.half()``,
...) changes those weights in place, so it must not overlap a prediction: :class:`UseGuard` counts
the predictions in flight and refuses, with :class:`ModelBusyError`, a conversion that would
overlap one, or a prediction that would overlap a conversion, instead of letting torch fail deep
inside (or, worse, mix old and new weights).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from yolactpp.errors import YolactppError

__all__ = ["ModelBusyError", "UseGuard", "torch_threads"]

_THREADS_LOCK = threading.Lock()


class ModelBusyError(YolactppError, RuntimeError):
    """A model was converted while predicting in another thread, or asked to predict while being converted."""


_BEING = {"convert": "converted (model.to(...) or similar)", "export": "exported (model.export(...))"}


class UseGuard:
    """Counts the predictions running on one model and marks its conversions (cheap: one lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._converting = ""  # what is happening to the model, in words; empty when idle

    def __reduce__(self) -> tuple[type, tuple[()]]:  # copies and pickles get a fresh, idle guard
        return (UseGuard, ())

    @contextmanager
    def predicting(self) -> Iterator[None]:
        """Held for the length of one batch's prediction."""
        with self._lock:
            if self._converting:
                raise ModelBusyError(
                    f"the model is being {self._converting} in another thread; "
                    "predict after that has returned"
                )
            self._running += 1
        try:
            yield
        finally:
            with self._lock:
                self._running -= 1

    @contextmanager
    def converting(self, action: str = "convert") -> Iterator[None]:
        """Held while the weights are converted in place (``action="convert"``), or while the model
        is traced for export (``"export"``: tracing patches torch's global state, which a
        prediction running meanwhile would see)."""
        what = _BEING[action]
        with self._lock:
            if self._running:
                raise ModelBusyError(
                    f"cannot {action} the model while {self._running} prediction(s) run on it in other threads: "
                    f"{action} it before sharing it, or {action} a copy (copy.deepcopy(model))"
                )
            if self._converting:
                raise ModelBusyError(f"the model is already being {self._converting} in another thread")
            self._converting = what
        try:
            yield
        finally:
            with self._lock:
                self._converting = ""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block and restored after it.

    torch's count is process-wide; this scopes it to one runner (an AOTInductor package opened with
    ``threads=N``, a benchmark row) so that nothing else in the process inherits it. ``None``: as is.
    """
    if threads is None:
        yield
        return
    import torch

    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
