"""Mask assembly: crop, windowed / whole upsampling (equal to full bilinear upsampling), pixel boxes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from yolactpp.postprocess import boxes_to_pixels, crop_masks, mask_iou_scores, upsample_masks


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


# (x1, y1, x2, y2) relative box on a 8 x 16 (H x W) mask, padding -> kept rows, kept cols (by hand:
# keep column c iff x1 * 16 - padding <= c < x2 * 16 + padding, clamped to the mask; rows alike).
CROP_CASES = {
    "integer edges": ((0.25, 0.25, 0.625, 0.625), 1.0, range(1, 6), range(3, 11)),  # x 4..10, y 2..5
    "half-pixel edges": ((0.28125, 0.3125, 0.59375, 0.5625), 1.0, range(2, 6), range(4, 11)),  # x 4.5..9.5, y 2.5..4.5
    "integer edges, no padding": ((0.25, 0.25, 0.625, 0.625), 0.0, range(2, 5), range(4, 10)),
    "half-pixel, no padding": ((0.28125, 0.3125, 0.59375, 0.5625), 0.0, range(3, 5), range(5, 10)),
    "clamped and swapped": ((-0.1, 0.75, 1.2, 0.25), 1.0, range(1, 7), range(16)),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", CROP_CASES, ids=str)
def test_crop_edges_on_both_axes(case: str, dtype: torch.dtype) -> None:
    """Both box edges, on both axes, at integer and half-pixel positions (exact in float32)."""
    box, padding, rows, cols = CROP_CASES[case]
    expected = torch.zeros(8, 16, dtype=dtype)
    expected[rows.start : rows.stop, cols.start : cols.stop] = 1
    cropped = crop_masks(torch.ones(1, 8, 16, dtype=dtype), torch.tensor([box], dtype=dtype), padding)
    assert torch.equal(cropped[0], expected)


def test_boxes_are_ordered_and_clamped_not_truncated() -> None:
    boxes = torch.tensor([[0.6, -0.1, 0.2, 1.3]], dtype=torch.float64)
    px = boxes_to_pixels(boxes, width=100, height=50)
    assert px.tolist() == [[20.0, 0.0, 60.0, 50.0]]
    frac = boxes_to_pixels(torch.tensor([[0.1234, 0.2, 0.5, 0.6]], dtype=torch.float64), 100, 50)
    assert frac[0, 0].item() == pytest.approx(12.34)


class _TableIoU(torch.nn.Module):
    """A stand-in MaskIoU net: records its input and answers a fixed [N, C] table."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = table
        self.seen: list[torch.Tensor] = []

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        self.seen.append(masks)
        return self.table[: masks.shape[0]]


def test_mask_iou_uses_each_detections_own_class_column() -> None:
    """Re-scoring takes column ``label`` (0-based, no background) of the soft masks' predicted IoUs."""
    table = torch.arange(4 * 80, dtype=torch.float64).view(4, 80) / 1024  # every entry distinct
    net = _TableIoU(table)
    soft = torch.rand(4, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 0, 79, 3])
    got = mask_iou_scores(net, soft, labels)  # type: ignore[arg-type]
    assert got.tolist() == [table[0, 3].item(), table[1, 0].item(), table[2, 79].item(), table[3, 3].item()]
    (seen,) = net.seen
    assert torch.equal(seen, soft[:, None])  # the soft masks themselves, not binarized ones
    assert mask_iou_scores(net, soft[:0], labels[:0]).shape == (0,)


@pytest.mark.parametrize("size", [(720, 1280), (97, 61), (2, 3), (1000, 40)])
def test_numpy_upsampling_equals_full_interpolation(size: tuple[int, int]) -> None:
    """The torch-free twin (exported models) computes in float32, on cropped, empty, uncropped and
    edge-touching masks: equal to float32 interpolation up to last-bit ties at the 0.5 cut."""
    from yolactpp.numpy_ops import upsample_masks as numpy_upsample

    soft = _random_cropped(30, torch.float32, seed=4)
    soft[5] = 0
    soft[6] = torch.rand(138, 138)  # fills the image: the whole window
    soft[7] = 0
    soft[7, -3:, -2:] = 0.9  # a corner blob: the window's last rows and columns
    full = F.interpolate(soft[None], size=size, mode="bilinear", align_corners=False)[0] > 0.5
    ours = torch.from_numpy(numpy_upsample(soft.numpy(), *size))
    assert (ours != full).sum() <= 10 and ours[6].any() and not ours[5].any()
    assert ours[7].any() or min(size) < 10  # the corner blob shows unless the output is a few pixels
