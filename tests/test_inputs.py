"""Image inputs: every accepted form, the documented conversions, and clear errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.oracle.compare import image_path
from yolactpp import InvalidImageError, YolactPP
from yolactpp.preprocess import to_rgb_array


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.array(Image.open(image_path("square_550x550")).convert("RGB").resize((96, 64)))


@pytest.fixture(scope="module")
def model(checkpoint) -> YolactPP:
    return YolactPP.from_pretrained(checkpoint("yolact_resnet50"))


def test_equivalent_forms_give_the_same_array(rgb: np.ndarray, tmp_path) -> None:
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    for form in (rgb, Image.fromarray(rgb), torch.from_numpy(rgb).permute(2, 0, 1), path, str(path)):
        assert np.array_equal(to_rgb_array(form), rgb), type(form)


def test_grayscale_is_repeated_over_three_channels(rgb: np.ndarray) -> None:
    gray = rgb[:, :, 1].copy()
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    assert np.array_equal(to_rgb_array(gray), expected)
    assert np.array_equal(to_rgb_array(Image.fromarray(gray)), expected)
    assert np.array_equal(to_rgb_array(torch.from_numpy(gray)[None]), expected)


def test_alpha_and_palette_and_cmyk_are_converted(rgb: np.ndarray) -> None:
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 7, np.uint8)], axis=2)
    assert np.array_equal(to_rgb_array(Image.fromarray(rgba, "RGBA")), rgb)  # alpha dropped, not composited
    pal = Image.fromarray(rgb).quantize(16)
    assert np.array_equal(to_rgb_array(pal), np.asarray(pal.convert("RGB")))
    cmyk = Image.fromarray(rgb).convert("CMYK")
    assert np.array_equal(to_rgb_array(cmyk), np.asarray(cmyk.convert("RGB")))


def test_sixteen_bit_keeps_the_high_byte(rgb: np.ndarray) -> None:
    gray16 = rgb[:, :, 0].astype(np.uint16) * 256 + 200  # the low byte is discarded
    img16 = Image.fromarray(gray16)
    assert img16.mode.startswith("I")
    expected = np.repeat(rgb[:, :, :1], 3, axis=2)
    assert np.array_equal(to_rgb_array(img16), expected)
    assert np.array_equal(to_rgb_array(rgb.astype(np.uint16) * 256), rgb)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((0, 0, 3), np.uint8), "at least 2 x 2"),
        (np.zeros((1, 1, 3), np.uint8), "1 x 1 pixels"),
        (np.zeros((1, 40), np.uint8), "40 x 1 pixels"),
        (np.zeros((8, 8, 4), np.uint8), "drop alpha"),
        (np.zeros((8, 8, 2), np.uint8), "got shape (8, 8, 2)"),
        (np.zeros((2, 8, 8, 3), np.uint8), "got shape (2, 8, 8, 3)"),
        (np.zeros((8, 8, 3), np.float32), "expected uint8"),
        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
        (np.zeros((8, 8, 3), np.int32), "dtype int32"),
        (np.zeros((8, 8, 3), bool), "dtype bool"),
        (torch.zeros(8, 8, 3, dtype=torch.uint8), "C x H x W"),
        (torch.full((3, 8, 8), float("nan")), "NaN"),
        (torch.zeros(3, 8, 8), "expected torch.uint8"),
        (torch.zeros(3, 8, 8, dtype=torch.int16), "torch.int16"),
        (Image.new("F", (8, 8)), "floating-point"),
        (12345, "unsupported image type int"),
        ("/nonexistent/image.png", "image file not found"),
    ],
)
def test_bad_images_raise_clear_errors(bad: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=None) as info:
        to_rgb_array(bad)
    assert message in str(info.value)


def test_non_image_file_is_reported(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(InvalidImageError, match=r"cannot read .* as an image"):
        to_rgb_array(path)


def test_predict_rejects_bad_input_before_running(model: YolactPP) -> None:
    with pytest.raises(InvalidImageError, match="NaN"):
        model.predict(torch.full((3, 16, 16), float("nan")))
    with pytest.raises(InvalidImageError):
        model.predict([np.zeros((16, 16, 3), np.uint8), np.zeros((0, 5, 3), np.uint8)])


def test_rgba_predicts_like_rgb(model: YolactPP, rgb: np.ndarray) -> None:
    rgba = Image.fromarray(np.concatenate([rgb, np.zeros((*rgb.shape[:2], 1), np.uint8)], axis=2), "RGBA")
    a, b = model.predict(rgba), model.predict(rgb)
    assert len(a) == len(b) > 0
    assert torch.equal(a.scores, b.scores) and torch.equal(a.masks, b.masks)
