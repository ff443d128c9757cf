"""Mask assembly: crop, windowed / whole upsampling (equal to full bilinear upsampling), pixel boxes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from yolactpp.postprocess import boxes_to_pixels, crop_masks, upsample_masks


def _random_cropped(n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    soft = torch.rand(n, 138, 138, dtype=dtype, generator=g)
    corner = torch.rand(n, 2, dtype=dtype, generator=g) * 1.1 - 0.05
    size = torch.rand(n, 2, dtype=dtype, generator=g) * 0.5
    return crop_masks(soft, torch.cat([corner, corner + size], dim=1))


@pytest.mark.parametrize("size", [(720, 1280), (550, 550), (97, 61), (138, 138), (2, 3), (1000, 40)])
def test_windowed_upsampling_equals_full_interpolation(size: tuple[int, int]) -> None:
    soft = _random_cropped(40, torch.float64)
    soft[5] = 0  # an empty mask
    soft[6] = torch.rand(138, 138, dtype=torch.float64)  # an uncropped one
    full = F.interpolate(soft[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5
    assert torch.equal(upsample_masks(soft, *size), full)


def test_windowed_upsampling_float32_agrees() -> None:
    soft = _random_cropped(40, torch.float32, seed=1)
    full = F.interpolate(soft[None], size=(720, 1280), mode="bilinear", align_corners=False)[0] > 0.5
    ours = upsample_masks(soft, 720, 1280)
    assert (ours != full).sum() <= 10  # last-bit differences at the 0.5 boundary only
    assert upsample_masks(soft[:0], 720, 1280).shape == (0, 720, 1280)


def test_masks_covering_much_of_the_image_equal_interpolate_bit_for_bit() -> None:
    """Large masks take F.interpolate itself, so even float32 is exact for them; small ones in
    the same batch keep the windowed path."""
    g = torch.Generator().manual_seed(2)
    soft = torch.rand(24, 138, 138, generator=g)
    small = _random_cropped(4, torch.float32, seed=3) * 0
    small[:, 60:70, 50:64] = torch.rand(4, 10, 14, generator=g)
    soft[20:] = small
    full = F.interpolate(soft[None], size=(1000, 1000), mode="bilinear", align_corners=False)[0] > 0.5
    ours = upsample_masks(soft, 1000, 1000)
    assert torch.equal(ours[:20], full[:20])
    assert (ours[20:] != full[20:]).sum() <= 2 and ours[20:].any()
    assert not ours[20:, :400].any() and not ours[20:, 520:].any()  # zero outside the small windows


def test_crop_keeps_box_plus_one_pixel_padding() -> None:
    masks = torch.ones(1, 10, 10, dtype=torch.float64)
    boxes = torch.tensor([[0.25, 0.5, 0.55, 0.8]], dtype=torch.float64)  # x 2.5..5.5, y 5..8 in mask pixels
    kept = crop_masks(masks, boxes)[0].nonzero()
    assert (kept[:, 1].min(), kept[:, 1].max()) == (2, 6)  # 1.5 <= c < 6.5
    assert (kept[:, 0].min(), kept[:, 0].max()) == (4, 8)  # 4 <= r < 9


def test_boxes_are_ordered_and_clamped_not_truncated() -> None:
    boxes = torch.tensor([[0.6, -0.1, 0.2, 1.3]], dtype=torch.float64)
    px = boxes_to_pixels(boxes, width=100, height=50)
    assert px.tolist() == [[20.0, 0.0, 60.0, 50.0]]
    frac = boxes_to_pixels(torch.tensor([[0.1234, 0.2, 0.5, 0.6]], dtype=torch.float64), 100, 50)
    assert frac[0, 0].item() == pytest.approx(12.34)
