"""Prediction over iterables: lazy consumption, mixed sizes in one batch, early argument checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image


def test_iter_predict_is_lazy_and_batches_mixed_sizes(v1_model, landscape_path: Path, square_path: Path, landscape_det, square_det) -> None:
    pulled: list[int] = []

    def images() -> Iterator[object]:
        for i, image in enumerate([landscape_path, np.asarray(Image.open(square_path).convert("RGB")), landscape_path]):
            pulled.append(i)
            yield image

    stream = v1_model.iter_predict(images(), batch_size=2)
    assert pulled == []  # nothing read before the first result is asked for
    first = next(stream)
    assert pulled == [0, 1]  # one batch of two (1280x720 and 550x550 together), not the whole stream
    second = next(stream)
    assert pulled == [0, 1]
    assert first.image_size == (720, 1280) and second.image_size == (550, 550)
    assert first.path == str(landscape_path) and second.path is None
    for batched, single in ((first, landscape_det), (second, square_det)):
        assert batched.labels.tolist() == single.labels.tolist()
        torch.testing.assert_close(batched.boxes, single.boxes, atol=1e-3, rtol=0)
        torch.testing.assert_close(batched.scores, single.scores, atol=1e-4, rtol=0)
    stream.close()  # an abandoned stream never reads the third image
    assert pulled == [0, 1]


def test_iter_predict_checks_arguments_before_reading(v1_model) -> None:
    def never() -> Iterator[object]:
        raise AssertionError("the stream must not be read")
        yield  # pragma: no cover

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            v1_model.iter_predict(never(), batch_size=bad)
    with pytest.raises(ValueError, match="unknown class"):
        v1_model.iter_predict(never(), classes=["unicorn"])
    with pytest.raises(ValueError, match="score_threshold"):
        v1_model.iter_predict(never(), score_threshold=-1)
    assert list(v1_model.iter_predict([])) == []
    with pytest.raises(TypeError, match="iter_predict"):
        v1_model.predict(never())
