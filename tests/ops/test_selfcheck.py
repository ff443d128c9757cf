"""The first-use self-check of native kernels, exercised on the CPU with injected faulty kernels.

It guards the CUDA kernels in real use (DEVICE_TYPES = ("cuda",)); here the CPU stands in for a
device, so the mechanism (compare once, switch that device to the fallback, warn once, report in
backend_info) is tested without a GPU.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision

from yolactpp import ops
from yolactpp.ops import _loader, _selfcheck


@pytest.fixture
def check_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_selfcheck, "DEVICE_TYPES", ("cpu",))
    monkeypatch.setattr(_selfcheck, "_results", {})
    monkeypatch.setattr(_loader, "_checks_warned", set())
    monkeypatch.setattr(_selfcheck, "KERNELS", dict(_selfcheck.KERNELS))


def dcn_case() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(5)
    return (
        torch.randn(1, 4, 6, 6, generator=gen),
        torch.randn(1, 18, 6, 6, generator=gen),
        torch.randn(3, 4, 3, 3, generator=gen),
    )


def test_correct_kernels_pass_and_stay_native(check_cpu: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _loader.use_native("deform_conv2d", torch.device("cpu"))
        assert _loader.use_native("fast_nms", torch.device("cpu"))
    assert _selfcheck._results == {("deform_conv2d", "cpu"): None, ("fast_nms", "cpu"): None}
    infos = {(i.op, i.device): i for i in ops.backend_info()}
    assert infos["deform_conv2d", "cpu"].backend == "native-cpu"
    assert "checked against the reference on first use" in infos["deform_conv2d", "cpu"].reason


def test_a_wrong_dcn_kernel_is_caught_once_and_the_device_falls_back(check_cpu: None) -> None:
    real = _selfcheck.KERNELS["deform_conv2d"]
    _selfcheck.KERNELS["deform_conv2d"] = lambda *args: real(*args) + 1e-3  # type: ignore[operator]
    x, offset, weight = dcn_case()
    with pytest.warns(
        ops.NativeOpsFallbackWarning, match=r"disagrees with its reference on cpu .*max abs difference 0\.001"
    ):
        out = ops.deform_conv2d(x, offset, weight, padding=1)
    torch.testing.assert_close(out, torchvision.ops.deform_conv2d(x, offset, weight, padding=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.deform_conv2d(x, offset, weight, padding=1)  # warned once
    info = {(i.op, i.device): i for i in ops.backend_info()}["deform_conv2d", "cpu"]
    assert info.backend == "fallback" and "failed its self-check" in info.reason and "0.001" in info.reason
    with pytest.raises(RuntimeError, match="failed its self-check"), ops.use_backend("native"):
        ops.deform_conv2d(x, offset, weight, padding=1)


def test_a_crashing_or_wrong_nms_kernel_falls_back(check_cpu: None) -> None:
    def broken(*args):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    _selfcheck.KERNELS["fast_nms"] = broken
    with pytest.warns(ops.NativeOpsFallbackWarning, match="raised RuntimeError: CUDA error: an illegal memory access"):
        assert not _loader.use_native("fast_nms", torch.device("cpu"))

    _selfcheck._results.clear()
    _selfcheck.KERNELS["fast_nms"] = lambda *args: tuple(t[:-1] for t in torch.ops.yolactpp.fast_nms(*args))
    assert _selfcheck.verify("fast_nms", torch.device("cpu")) == (
        "indices differ from the pure-PyTorch FastNMS ([19] vs [20] values)"
    )
