"""The native deform_conv2d backward: gradcheck in float64, parity with torchvision's gradients,
the NaN-offset rule, autocast, and the torchvision fallback still selectable."""

from __future__ import annotations

import pytest
import torch
import torchvision

from tests.ops.conftest import cuda
from tests.ops.test_deform_conv import make_case, random_configs
from yolactpp import ops

NAMES = ("input", "offset", "weight", "bias", "mask")


def leaves(case: dict, dtype: torch.dtype | None = None, device: str = "cpu") -> dict:
    """The case's tensors as fresh leaves that require gradients (optionally cast / moved)."""
    out = dict(case)
    for name in NAMES:
        if case[name] is not None:
            out[name] = case[name].detach().to(device, dtype or case[name].dtype).requires_grad_()
    return out


def native_op(c: dict) -> torch.Tensor:
    return torch.ops.yolactpp.deform_conv2d(
        c["input"], c["offset"], c["weight"], c["bias"], c["stride"], c["padding"], c["dilation"], c["mask"]
    )


def grads(fn, case: dict, grad: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """fn's output and the gradients of sum(output * grad) for every tensor argument present."""
    out = fn(case)
    grad = torch.randn_like(out, generator=torch.Generator().manual_seed(99)) if grad is None else grad
    present = [n for n in NAMES if case[n] is not None]
    values = torch.autograd.grad(out, [case[n] for n in present], grad)
    return grad, dict(zip(present, values, strict=True))


def torchvision_grads(case: dict, grad: torch.Tensor) -> dict:
    """torchvision's gradients in float64 on the same values."""
    up = leaves(case, torch.float64, "cpu")
    return grads(lambda c: torchvision.ops.deform_conv2d(**c), up, grad.detach().double().cpu())[1]


def off_the_kinks(case: dict) -> dict:
    """Offsets whose fractional part is in [0.2, 0.8]: bilinear sampling is smooth there, so finite
    differences (gradcheck) see the analytic derivative; a few taps are sent far outside."""
    offset = case["offset"]
    frac = torch.rand(offset.shape, generator=torch.Generator().manual_seed(1), dtype=offset.dtype) * 0.6 + 0.2
    offset = offset.floor() + frac
    offset.view(-1)[::7] = -40.5  # every 7th offset value: the tap samples outside the map
    return dict(case, offset=offset)


GRADCHECK_CASES = {
    "mask+bias": dict(),
    "no mask": dict(with_mask=False),
    "no bias": dict(with_bias=False),
    "stride-padding-dilation": dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    "groups+offset-groups": dict(groups=2, offset_groups=2, in_channels=4, out_channels=4),
    "1x1": dict(kernel=(1, 1), padding=(0, 0)),
    "batch-3": dict(batch=3, size=(5, 6)),
}


@pytest.mark.parametrize("cfg", GRADCHECK_CASES.values(), ids=GRADCHECK_CASES.keys())
def test_gradcheck_float64(cfg: dict) -> None:
    """All five gradients against finite differences."""
    base = dict(batch=2, in_channels=4, out_channels=3, size=(6, 7))
    case = leaves(off_the_kinks(make_case(torch.Generator().manual_seed(3), **{**base, **cfg})))
    inputs = tuple(case[n] for n in NAMES)

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        return native_op(dict(case, **dict(zip(NAMES, tensors, strict=True))))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


def test_gradcheck_on_exact_integer_positions() -> None:
    """Integer offsets: every tap lands on a pixel. Sampling is linear in input, weight, mask and
    bias there (gradcheck); the offset derivative is one-sided (a kink), so it is compared with
    torchvision's, which uses the same convention (the corner below/right of the position)."""
    case = make_case(torch.Generator().manual_seed(4), in_channels=4, out_channels=3, size=(6, 7))
    case["offset"] = case["offset"].round()
    case = leaves(case)
    case["offset"].requires_grad_(False)
    inputs = tuple(case[n] for n in ("input", "weight", "bias", "mask"))

    def fn(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return native_op(dict(case, input=x, weight=w, bias=b, mask=m))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)
    case["offset"].requires_grad_(True)
    grad, ours = grads(native_op, case)
    expected = torchvision_grads(case, grad)
    for name in NAMES:
        torch.testing.assert_close(ours[name], expected[name], rtol=0, atol=1e-12, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    "cfg", random_configs(12, seed=7), ids=lambda c: f"{c['kernel']}-s{c['stride']}-g{c['groups']}-og{c['offset_groups']}"
)
def test_float32_gradients_match_torchvision(cfg: dict) -> None:
    case = leaves(make_case(torch.Generator().manual_seed(hash(str(cfg)) % 2**31), **cfg, dtype=torch.float32))
    grad, ours = grads(native_op, case)
    expected = torchvision_grads(case, grad)
    for name, value in ours.items():
        assert value.dtype == torch.float32 and value.shape == case[name].shape
        scale = expected[name].abs().max().item() + 1e-6
        torch.testing.assert_close(value.double(), expected[name], rtol=0, atol=2e-6 * scale, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize(
    ("batch", "channels", "size"),
    [(2, 64, 80), (1, 64, 96)],
    ids=["chunks-of-images", "chunks-of-rows"],
)
def test_chunked_backward_matches_torchvision(batch: int, channels: int, size: int) -> None:
    """Columns over the 32 MB chunk budget (float64): the weight gradient sums over chunks, the
    other gradients are written chunk by chunk."""
    case = leaves(
        make_case(torch.Generator().manual_seed(5), batch=batch, in_channels=channels, out_channels=4,
                  size=(size, size), offset_scale=2.0)
    )
    grad, ours = grads(native_op, case)
    expected = torchvision_grads(case, grad)
    for name in NAMES:
        torch.testing.assert_close(ours[name], expected[name], rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


def test_one_image_on_several_threads_matches_one_thread() -> None:
    """A single image split over threads (private input-gradient accumulators summed after) gives
    torchvision's gradients, as one thread does."""
    case = leaves(make_case(torch.Generator().manual_seed(6), batch=1, in_channels=16, size=(24, 24)))
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results.append(grads(native_op, case, grad=torch.ones(1, 6, 24, 24, dtype=torch.float64))[1])
    finally:
        torch.set_num_threads(previous)
    expected = torchvision_grads(case, torch.ones(1, 6, 24, 24))
    for result in results:
        for name in NAMES:
            torch.testing.assert_close(result[name], expected[name], rtol=0, atol=1e-11, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_gradients_keep_the_memory_format(fmt: torch.memory_format) -> None:
    case = make_case(torch.Generator().manual_seed(8), dtype=torch.float32)
    case["input"] = case["input"].contiguous(memory_format=fmt)
    case["weight"] = case["weight"].contiguous(memory_format=fmt)
    case = leaves(case)
    _, ours = grads(native_op, case)
    assert ours["input"].is_contiguous(memory_format=fmt) and ours["weight"].is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("backend", ["native", "fallback"])
def test_nan_offsets_give_zero_gradients_for_their_tap(backend: str) -> None:
    """A NaN offset reads zero (forward) and has zero offset and mask gradients; no NaN anywhere."""
    case = make_case(torch.Generator().manual_seed(9), batch=1, dtype=torch.float32)
    case["offset"][0, 8, 4, 5] = float("nan")  # tap 4's dy at pixel (4, 5)
    case = leaves(case)
    with ops.use_backend(backend):
        out = ops.deform_conv2d(**case)
        _, ours = grads(lambda c: ops.deform_conv2d(**c), case)
    assert not out.isnan().any()
    for name, value in ours.items():
        assert not value.isnan().any(), name
    assert ours["offset"][0, 8:10, 4, 5].tolist() == [0.0, 0.0]
    assert ours["mask"][0, 4, 4, 5].item() == 0.0
    # The tap reads zero: same output as a tap sent far outside.
    outside = dict(case, offset=case["offset"].detach().nan_to_num(nan=-1e6))
    torch.testing.assert_close(out, ops.deform_conv2d(**outside).detach())


def test_native_and_fallback_gradients_agree_through_the_public_wrapper(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend auto runs the native backward (torchvision is not called); 'fallback' still runs
    torchvision; both give the same gradients."""
    calls = []
    real = torchvision.ops.deform_conv2d
    monkeypatch.setattr(torchvision.ops, "deform_conv2d", lambda *a, **k: calls.append(1) or real(*a, **k))
    case = leaves(make_case(torch.Generator().manual_seed(10), dtype=torch.float32))
    grad, native = grads(lambda c: ops.deform_conv2d(**c), case)
    assert calls == []
    with ops.use_backend("fallback"):
        _, fallback = grads(lambda c: ops.deform_conv2d(**c), case, grad)
    assert calls == [1]
    for name in NAMES:
        torch.testing.assert_close(native[name], fallback[name], rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("backend", ["native", "fallback"])
def test_bfloat16_autocast_gradients_reach_float32_parameters(backend: str) -> None:
    """Under bf16 autocast the op computes in bfloat16 and the gradients come back to the float32
    leaves in float32, close to the float32 gradients of the same (bfloat16-rounded) values."""
    case = make_case(torch.Generator().manual_seed(11), in_channels=16, dtype=torch.float32)
    case = leaves({k: (v.bfloat16().float() if isinstance(v, torch.Tensor) else v) for k, v in case.items()})
    grad, expected = grads(native_op, case)
    with ops.use_backend(backend), torch.autocast("cpu", dtype=torch.bfloat16):
        out = ops.deform_conv2d(**case)
    assert out.dtype == torch.bfloat16
    values = torch.autograd.grad(out, [case[n] for n in NAMES], grad.bfloat16())
    for name, value in zip(NAMES, values, strict=True):
        assert value.dtype == torch.float32, name
        scale = expected[name].abs().max().item()
        torch.testing.assert_close(
            value, expected[name], rtol=0, atol=0.03 * scale, msg=lambda m, name=name: f"{name}: {m}"
        )


def test_opcheck_forward_with_gradients_and_backward() -> None:
    """The autograd registration and both fake kernels agree with the real kernels."""
    for cfg in (dict(), dict(with_bias=False, with_mask=False, groups=2, offset_groups=2)):
        case = leaves(make_case(torch.Generator().manual_seed(12), **cfg))
        args = tuple(case[k] for k in ("input", "offset", "weight", "bias", "stride", "padding", "dilation", "mask"))
        torch.library.opcheck(torch.ops.yolactpp.deform_conv2d.default, args)
        grad = torch.randn(2, 6, 9, 11, dtype=torch.float64)
        back = (grad, case["input"].detach(), case["offset"].detach(), case["weight"].detach(),
                None if case["mask"] is None else case["mask"].detach(), (1, 1), (1, 1), (1, 1), case["bias"] is not None)
        torch.library.opcheck(torch.ops.yolactpp.deform_conv2d_backward.default, back)


def test_backward_rejects_a_wrong_gradient_shape() -> None:
    case = make_case(torch.Generator().manual_seed(13))
    args = (case["input"], case["offset"], case["weight"], case["mask"], (1, 1), (1, 1), (1, 1), True)
    with pytest.raises(RuntimeError, match=r"grad must be \[2, 6, 9, 11\], got \[2, 6, 9, 10\]"):
        torch.ops.yolactpp.deform_conv2d_backward(torch.zeros(2, 6, 9, 10, dtype=torch.float64), *args)


@cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_gradients_match_torchvision(dtype: torch.dtype) -> None:
    for cfg in (dict(), dict(groups=2, offset_groups=2, with_bias=False), dict(stride=(2, 2), with_mask=False)):
        case = leaves(make_case(torch.Generator().manual_seed(14), **cfg, dtype=dtype), device="cuda")
        grad, ours = grads(native_op, case)
        expected = torchvision_grads(case, grad)
        for name, value in ours.items():
            assert value.is_cuda and value.dtype == dtype
            scale = expected[name].abs().max().item() + 1e-6
            bound = 1e-10 if dtype == torch.float64 else 1e-5 * scale
            torch.testing.assert_close(value.cpu().double(), expected[name], rtol=0, atol=bound, msg=lambda m, name=name: f"{name}: {m}")


@cuda
def test_cuda_gradcheck_and_bfloat16() -> None:
    case = leaves(off_the_kinks(make_case(torch.Generator().manual_seed(15), in_channels=4, size=(6, 7))), device="cuda")
    inputs = tuple(case[n] for n in NAMES)

    def fn(*tensors: torch.Tensor) -> torch.Tensor:
        return native_op(dict(case, **dict(zip(NAMES, tensors, strict=True))))

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)
    low = leaves(case, torch.bfloat16, "cuda")
    _, ours = grads(native_op, low)
    assert all(v.dtype == torch.bfloat16 and not v.isnan().any() for v in ours.values())
