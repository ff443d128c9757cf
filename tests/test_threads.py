"""One model, many threads: predictions may run together, a conversion (``model.to``) may not
overlap them; the guard refuses the overlap with ``ModelBusyError`` instead of mixing weights."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch

from yolactpp import ModelBusyError


def test_to_converts_in_place_and_copies_are_independent(v1_model) -> None:
    assert v1_model.to(torch.float32) is v1_model  # as in torch: same object, converted in place
    twin = copy.deepcopy(v1_model)  # the documented way to keep both precisions
    assert twin is not v1_model and twin._guard is not v1_model._guard
    assert twin.to(torch.bfloat16).dtype == torch.bfloat16 and v1_model.dtype == torch.float32


def test_predict_refuses_a_model_being_converted(v1_model) -> None:
    with v1_model._guard.converting(), pytest.raises(ModelBusyError, match="being converted"):
        v1_model.predict(np.zeros((16, 16, 3), np.uint8))


def test_conversion_refuses_a_model_predicting_in_another_thread(v1_model, monkeypatch: pytest.MonkeyPatch) -> None:
    started, release = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def slow_forward(x: torch.Tensor) -> None:
        started.set()
        release.wait(timeout=60)
        raise RuntimeError("stopped on purpose")

    monkeypatch.setattr(v1_model.network, "forward", slow_forward)

    def predict() -> None:
        try:
            v1_model.predict(np.zeros((16, 16, 3), np.uint8))
        except BaseException as exc:  # handed to the main thread
            outcome.append(exc)

    worker = threading.Thread(target=predict)
    worker.start()
    try:
        assert started.wait(timeout=60)
        with pytest.raises(ModelBusyError, match=r"cannot convert the model while 1 prediction\(s\) run"):
            v1_model.to(torch.float64)
        assert v1_model.dtype == torch.float32  # untouched
    finally:
        release.set()
        worker.join(timeout=60)
    assert len(outcome) == 1 and "stopped on purpose" in str(outcome[0])
    assert v1_model.to(torch.float32) is v1_model  # idle again: conversions work
