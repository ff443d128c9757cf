"""Image inputs: every accepted form, the documented conversions, and clear errors for the rest."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.oracle.compare import image_path
from yolactpp import ImageTooLargeError, InvalidImageError, YolactPP
from yolactpp.preprocess import decode_image, to_rgb_array


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
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
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
        (Image.fromarray(np.full((8, 8), 300.0, np.float32), "F"), "values 300..300; expected 0..1 or 0..255"),
        (Image.fromarray(np.full((8, 8), np.inf, np.float32), "F"), "NaN or infinite"),
        (Image.fromarray(np.full((8, 8), 70000, np.int32), "I"), "values 70000..70000, outside the 16-bit range"),
        ("https://example.com/cat.jpg", "is a URL; yolactpp does not download images"),
        (12345, "unsupported image type int"),
        ("/nonexistent/image.png", "image file not found"),
    ],
)
def test_bad_images_raise_clear_errors(bad: object, message: str) -> None:
    with pytest.raises(InvalidImageError, match=None) as info:
        to_rgb_array(bad)
    assert message in str(info.value)


def test_wide_integer_and_float_images_are_read_by_their_value_range(rgb: np.ndarray) -> None:
    """8-bit values stored in I / I;16 / F images or uint16 arrays are kept, never turned black."""
    gray = rgb[:, :, 1].copy()
    expected = np.repeat(gray[:, :, None], 3, axis=2)
    assert gray.max() > 16  # a black result would differ
    wide_8bit = (
        Image.fromarray(gray).convert("I"),
        Image.fromarray(gray.astype(np.uint16)),  # mode I;16
        Image.fromarray(gray).convert("F"),  # 0..255
        Image.fromarray(gray.astype(np.float32) / 255, "F"),  # 0..1
    )
    for image in wide_8bit:
        assert np.array_equal(to_rgb_array(image), expected), image.mode
    assert np.array_equal(to_rgb_array(gray.astype(np.uint16)), expected)
    # 16-bit values keep their top byte (OpenCV's imread), whatever the container
    assert np.array_equal(to_rgb_array(Image.fromarray(gray.astype(np.int32) * 257, "I")), expected)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb, without the memory)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_raises_a_named_error_with_the_pixel_count(tmp_path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(30000, 30000))
    for source in (path, str(path)):
        with pytest.raises(ImageTooLargeError) as info:
            to_rgb_array(source)
        error = info.value
        assert isinstance(error, InvalidImageError) and not isinstance(error, Image.DecompressionBombError)
        assert error.pixels == 900_000_000 and error.limit == 2 * Image.MAX_IMAGE_PIXELS
        assert "900,000,000 pixels" in str(error) and "PIL.Image.MAX_IMAGE_PIXELS = 900000000" in str(error)
        assert "--max-image-pixels" in str(error) and str(path) in str(error)
    with pytest.raises(ImageTooLargeError, match=r"upload\.png is too large"):
        decode_image(path.read_bytes(), "upload.png")


def test_directory_is_not_called_missing(tmp_path) -> None:
    with pytest.raises(InvalidImageError, match="is a directory, not an image file"):
        to_rgb_array(tmp_path)


def test_non_image_file_is_reported(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(InvalidImageError, match="cannot read .* as an image"):
        to_rgb_array(path)


def test_predict_rejects_bad_input_before_running(model: YolactPP) -> None:
    with pytest.raises(InvalidImageError, match="NaN"):
        model.predict(torch.full((3, 16, 16), float("nan")))
    with pytest.raises(InvalidImageError):
        model.predict([np.zeros((16, 16, 3), np.uint8), np.zeros((0, 5, 3), np.uint8)])


def test_rgba_predicts_like_rgb(model: YolactPP, rgb: np.ndarray) -> None:
    rgba = Image.fromarray(np.concatenate([rgb, np.zeros(rgb.shape[:2] + (1,), np.uint8)], axis=2), "RGBA")
    a, b = model.predict(rgba), model.predict(rgb)
    assert len(a) == len(b) > 0
    assert torch.equal(a.scores, b.scores) and torch.equal(a.masks, b.masks)
