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


def test_iter_predict_goes_on_past_bad_items_when_asked(
    v1_model, square_path: Path, square_det, tmp_path: Path
) -> None:
    from yolactpp import InvalidImageError, PredictionFailure, YolactppWarning

    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG not really")
    square = np.asarray(Image.open(square_path).convert("RGB"))
    items = [bad, square_path, np.zeros((1, 1, 3), np.uint8)]

    results = list(v1_model.iter_predict(items, batch_size=3, on_error="yield"))  # one batch, two bad items
    assert [type(r).__name__ for r in results] == ["PredictionFailure", "Detections", "PredictionFailure"]
    failure, det, tiny = results
    assert isinstance(failure, PredictionFailure) and isinstance(failure.error, InvalidImageError)
    assert (failure.index, failure.source, tiny.index, tiny.source) == (0, str(bad), 2, None)
    assert failure.message.startswith(f"cannot read {bad} as an image") and "item 2: image is 1 x 1" in tiny.message
    assert det.path == str(square_path) and det.labels.tolist() == square_det.labels.tolist()  # predicted as usual
    torch.testing.assert_close(det.scores, square_det.scores, atol=1e-4, rtol=0)

    with pytest.warns(YolactppWarning, match=f"skipped cannot read {bad}") as record:
        skipped = list(v1_model.iter_predict([bad, square], on_error="skip"))
    assert record[0].filename == __file__  # the line that drove the stream, not the batching loop
    assert len(skipped) == 1 and skipped[0].image_size == (550, 550)

    with pytest.raises(InvalidImageError, match="cannot read"):
        list(v1_model.iter_predict([bad, square]))  # default: the first bad item ends the stream
    with pytest.raises(ValueError, match="on_error must be one of 'raise', 'skip', 'yield'"):
        v1_model.iter_predict([], on_error="ignore")


def test_iter_predict_never_swallows_a_bug(v1_model, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(image: object) -> np.ndarray:
        raise RuntimeError("a bug, not a bad image")

    monkeypatch.setattr("yolactpp.batching.to_rgb_array", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        list(v1_model.iter_predict([np.zeros((8, 8, 3), np.uint8)], on_error="yield"))
