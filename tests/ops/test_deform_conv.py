"""Native deform_conv2d against torchvision.ops.deform_conv2d (the semantics we promise)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision

from tests.ops.conftest import cuda
from yolactpp import ops


def native(*args):
    """The registered op (looked up at call time: the library loads in the session fixture)."""
    return torch.ops.yolactpp.deform_conv2d(*args)


def make_case(
    gen: torch.Generator,
    *,
    batch: int = 2,
    in_channels: int = 8,
    out_channels: int = 6,
    size: tuple[int, int] = (9, 11),
    kernel: tuple[int, int] = (3, 3),
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (1, 1),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    offset_groups: int = 1,
    offset_scale: float = 3.0,
    with_bias: bool = True,
    with_mask: bool = True,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Random inputs; offsets of a few pixels so that many taps leave the image."""
    h, w = size
    kh, kw = kernel
    out_h = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    out_w = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    taps = kh * kw
    args = dict(
        input=torch.randn(batch, in_channels, h, w, generator=gen, dtype=torch.float64),
        offset=torch.randn(batch, 2 * offset_groups * taps, out_h, out_w, generator=gen, dtype=torch.float64)
        * offset_scale,
        weight=torch.randn(out_channels, in_channels // groups, kh, kw, generator=gen, dtype=torch.float64),
        bias=torch.randn(out_channels, generator=gen, dtype=torch.float64) if with_bias else None,
        mask=torch.rand(batch, offset_groups * taps, out_h, out_w, generator=gen, dtype=torch.float64)
        if with_mask
        else None,
    )
    args = {k: (v.to(dtype) if v is not None else None) for k, v in args.items()}
    return dict(args, stride=stride, padding=padding, dilation=dilation)


def reference(case: dict) -> torch.Tensor:
    """torchvision in float64 on the same (possibly rounded) values."""
    up = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    return torchvision.ops.deform_conv2d(**up)


def run_native(case: dict) -> torch.Tensor:
    c = case
    return native(c["input"], c["offset"], c["weight"], c["bias"], c["stride"], c["padding"], c["dilation"], c["mask"])


def random_configs(count: int, seed: int) -> list[dict]:
    """Varied shapes: kernels, strides, padding, dilation, groups, offset groups, batch, no bias/mask."""
    gen = torch.Generator().manual_seed(seed)

    def pick(*values):
        return values[int(torch.randint(len(values), (1,), generator=gen))]

    configs = []
    while len(configs) < count:
        groups, offset_groups = pick(1, 1, 2), pick(1, 1, 2, 4)
        in_channels = groups * offset_groups * pick(1, 2, 3)
        kernel = (pick(1, 2, 3), pick(1, 3))
        cfg = dict(
            batch=pick(1, 2, 3),
            in_channels=in_channels,
            out_channels=groups * pick(1, 3),
            size=(pick(4, 7, 10), pick(5, 8)),
            kernel=kernel,
            stride=(pick(1, 2), pick(1, 3)),
            padding=(pick(0, 1, 2), pick(0, 1)),
            dilation=(pick(1, 2), pick(1, 2)),
            groups=groups,
            offset_groups=offset_groups,
            offset_scale=pick(0.0, 1.5, 6.0),
            with_bias=pick(True, False),
            with_mask=pick(True, False),
        )
        h, w = cfg["size"]
        span = [cfg["dilation"][i] * (kernel[i] - 1) + 1 for i in range(2)]
        if h + 2 * cfg["padding"][0] >= span[0] and w + 2 * cfg["padding"][1] >= span[1]:
            configs.append(cfg)
    return configs


@pytest.mark.parametrize("cfg", random_configs(40, seed=1), ids=lambda c: f"{c['kernel']}-s{c['stride']}-g{c['groups']}-og{c['offset_groups']}")
def test_float64_matches_torchvision(cfg: dict) -> None:
    case = make_case(torch.Generator().manual_seed(hash(str(cfg)) % 2**31), **cfg)
    ours = run_native(case)
    assert ours.dtype == torch.float64
    torch.testing.assert_close(ours, reference(case), rtol=0, atol=1e-10)


@pytest.mark.parametrize("cfg", random_configs(20, seed=2), ids=lambda c: f"{c['kernel']}-s{c['stride']}-g{c['groups']}-og{c['offset_groups']}")
def test_float32_matches_torchvision(cfg: dict) -> None:
    case = make_case(torch.Generator().manual_seed(7), dtype=torch.float32, **cfg)
    ours = run_native(case)
    ref = reference(case)
    assert ours.dtype == torch.float32
    assert (ours.double() - ref).abs().max() <= 1e-4 * ref.abs().max().clamp(min=1.0)


LOW_PRECISION_CASES = [
    dict(),
    dict(groups=2, offset_groups=4, stride=(2, 1)),
    dict(groups=4, offset_groups=2, out_channels=8, kernel=(3, 1), dilation=(2, 1), with_bias=False),
    dict(batch=3, with_mask=False, padding=(0, 2)),
]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("cfg", LOW_PRECISION_CASES, ids=range(len(LOW_PRECISION_CASES)))
def test_low_precision_close_to_torchvision(dtype: torch.dtype, cfg: dict) -> None:
    """bfloat16/float16 use the other column layout (taps as channels, a 1x1 convolution)."""
    case = make_case(torch.Generator().manual_seed(3), **{"in_channels": 32, "out_channels": 16, "size": (12, 12),
                                                          "dtype": dtype, **cfg})
    ours = run_native(case)
    ref = reference(case)
    assert ours.dtype == dtype
    assert (ours.double() - ref).abs().max() <= 2e-2 * ref.abs().max()


def test_yolact_layer_shape_channels_last() -> None:
    """A YOLACT++-like layer (channels_last, 128 channels, wide C so the vector paths run)."""
    case = make_case(torch.Generator().manual_seed(4), batch=1, in_channels=128, out_channels=64, size=(17, 17),
                     dtype=torch.float32)
    case["input"] = case["input"].contiguous(memory_format=torch.channels_last)
    ours = run_native(case)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    ref = reference(case)
    assert (ours.double() - ref).abs().max() <= 1e-4 * ref.abs().max()


@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_output_keeps_the_input_memory_format(fmt: torch.memory_format) -> None:
    case = make_case(torch.Generator().manual_seed(5), batch=2, in_channels=4, size=(6, 6))
    case["input"] = case["input"].contiguous(memory_format=fmt)
    ours = run_native(case)
    assert ours.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(ours, reference(case), rtol=0, atol=1e-10)


def test_noncontiguous_offset_and_mask_slices() -> None:
    """The DCN layer passes slices of one conv output (non-contiguous views)."""
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 4, 7, 7, generator=gen, dtype=torch.float64)
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=torch.float64)
    offset_mask = torch.randn(2, 27, 7, 7, generator=gen, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    offset, mask = offset_mask[:, :18] * 2, offset_mask[:, 18:].sigmoid()
    ours = native(x, offset, weight, None, (1, 1), (1, 1), (1, 1), mask)
    ref = torchvision.ops.deform_conv2d(x, offset, weight, None, (1, 1), (1, 1), mask=mask)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)


def test_zero_offsets_and_unit_mask_equal_conv2d() -> None:
    case = make_case(torch.Generator().manual_seed(8), offset_scale=0.0, stride=(2, 1), dilation=(1, 2), padding=(1, 2))
    case["mask"] = torch.ones_like(case["mask"])
    expected = F.conv2d(case["input"], case["weight"], case["bias"], case["stride"], case["padding"], case["dilation"])
    torch.testing.assert_close(run_native(case), expected, rtol=0, atol=1e-10)


def test_zero_mask_gives_the_bias() -> None:
    case = make_case(torch.Generator().manual_seed(9))
    case["mask"] = torch.zeros_like(case["mask"])
    out = run_native(case)
    torch.testing.assert_close(out, case["bias"].view(1, -1, 1, 1).expand_as(out), rtol=0, atol=0)


def test_offsets_far_outside_read_zeros() -> None:
    case = make_case(torch.Generator().manual_seed(10), with_bias=False)
    case["offset"] = torch.full_like(case["offset"], 1e6)
    assert run_native(case).abs().max() == 0


def test_large_batch_is_chunked_like_single_images() -> None:
    """Batch 33 gives the same result as the images one by one."""
    case = make_case(torch.Generator().manual_seed(11), batch=33, in_channels=4, size=(5, 6))
    whole = run_native(case)
    for n in (0, 17, 32):
        one = {k: (v[n : n + 1] if k in ("input", "offset", "mask") else v) for k, v in case.items()}
        torch.testing.assert_close(whole[n : n + 1], run_native(one), rtol=0, atol=0)


def test_empty_batch() -> None:
    case = make_case(torch.Generator().manual_seed(12), batch=0)
    out = run_native(case)
    assert out.shape == (0, 6, 9, 11)


def test_public_wrapper_uses_native_also_for_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    case = make_case(torch.Generator().manual_seed(13), batch=1)
    expected = reference(case)
    calls = []
    real = torchvision.ops.deform_conv2d
    monkeypatch.setattr(torchvision.ops, "deform_conv2d", lambda *a, **k: calls.append(1) or real(*a, **k))
    with torch.no_grad():
        out = ops.deform_conv2d(**case)
    assert calls == []
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-10)
    case["weight"].requires_grad_(True)
    ops.deform_conv2d(**case).sum().backward()
    assert calls == [] and case["weight"].grad is not None


def zeros(*shape: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(input=zeros(8, 9, 11)), "input must be 4-D"),
        (dict(offset=zeros(2, 17, 9, 11)), r"offset.shape\[1\] \(17\) must be a positive multiple of 2\*kh\*kw"),
        (dict(offset=zeros(2, 18, 8, 11)), r"offset must be \[2, 18, 9, 11\]"),
        (dict(mask=zeros(2, 8, 9, 11)), r"mask must be \[2, 9, 9, 11\]"),
        (dict(weight=zeros(6, 3, 3, 3)), r"must be a multiple of weight.shape\[1\]"),
        (dict(weight=zeros(5, 4, 3, 3)), "divisible by groups"),
        (dict(bias=zeros(5)), r"bias must be \[6\]"),
        (dict(offset=zeros(2, 18, 9, 11, dtype=torch.float32)), "offset has dtype Float but input has Double"),
        (dict(stride=(0, 1)), "stride must be positive"),
        (dict(padding=(-1, 0)), "padding must be non-negative"),
        (dict(input=zeros(2, 8, 1, 1), padding=(0, 0), offset=zeros(2, 18, 1, 1)), "output would be empty"),
    ],
)
def test_clear_errors(change: dict, message: str) -> None:
    case = make_case(torch.Generator().manual_seed(14))
    case.update(change)
    with pytest.raises(RuntimeError, match=message):
        run_native(case)


def test_opcheck() -> None:
    for cfg in (dict(), dict(groups=2, offset_groups=2, with_bias=False), dict(with_mask=False, stride=(2, 2))):
        case = make_case(torch.Generator().manual_seed(15), **cfg)
        c = case
        args = (c["input"], c["offset"], c["weight"], c["bias"], c["stride"], c["padding"], c["dilation"], c["mask"])
        torch.library.opcheck(torch.ops.yolactpp.deform_conv2d.default, args)
    cl = make_case(torch.Generator().manual_seed(16), dtype=torch.float32)
    cl["input"] = cl["input"].contiguous(memory_format=torch.channels_last)
    torch.library.opcheck(torch.ops.yolactpp.deform_conv2d.default, tuple(cl[k] for k in ("input", "offset", "weight", "bias", "stride", "padding", "dilation", "mask")))


def test_torch_compile_traces_the_fake_kernel() -> None:
    """fullgraph compile of the public wrapper: the graph holds the native op, results agree."""
    case = make_case(torch.Generator().manual_seed(17), dtype=torch.float32)
    seen: list[str] = []

    def backend(gm: torch.fx.GraphModule, example_inputs):
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    def layer(x, offset, mask):
        return ops.deform_conv2d(x, offset, case["weight"], case["bias"], 1, 1, mask=mask)

    compiled = torch.compile(layer, backend=backend, fullgraph=True)
    with torch.no_grad():
        out = compiled(case["input"], case["offset"], case["mask"])
        torch.testing.assert_close(out, layer(case["input"], case["offset"], case["mask"]))
    assert any("yolactpp.deform_conv2d" in t for t in seen), seen
    aot = torch.compile(layer, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(aot(case["input"], case["offset"], case["mask"]), out)


@cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    case = make_case(torch.Generator().manual_seed(18), in_channels=16, out_channels=8, groups=2, offset_groups=2)
    on_gpu = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    low = {k: (v.to(dtype) if isinstance(v, torch.Tensor) else v) for k, v in on_gpu.items()}
    out = run_native(low)
    assert out.is_cuda and out.dtype == dtype
    ref = reference(case)
    tol = {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 2e-2)
    assert (out.double().cpu() - ref).abs().max() <= tol * ref.abs().max().clamp(min=1.0)


@cuda
def test_cuda_opcheck_and_channels_last() -> None:
    case = make_case(torch.Generator().manual_seed(19), dtype=torch.float32)
    c = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    c["input"] = c["input"].contiguous(memory_format=torch.channels_last)
    args = (c["input"], c["offset"], c["weight"], c["bias"], c["stride"], c["padding"], c["dilation"], c["mask"])
    torch.library.opcheck(torch.ops.yolactpp.deform_conv2d.default, args)
    assert run_native(c).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", ["native", "fallback"])
def test_zero_channels_raise_instead_of_killing_the_process(backend: str) -> None:
    """Zero input channels made the group count zero: a division by zero (SIGFPE) in C++."""
    x, offset, weight = torch.randn(1, 0, 5, 5), torch.randn(1, 18, 5, 5), torch.randn(3, 1, 3, 3)
    with ops.use_backend(backend), pytest.raises(ValueError, match=r"input has no channels: \[1, 0, 5, 5\]"):
        ops.deform_conv2d(x, offset, weight, padding=1)
    with pytest.raises(RuntimeError, match="input has no channels"):
        native(x, offset, weight, None, (1, 1), (1, 1), (1, 1), None)


class OffsetDCN(torch.nn.Module):
    """A float32 DCN layer whose offsets come from a convolution, as in YOLACT++."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(21)
        self.offset_conv = torch.nn.Conv2d(8, 27, 3, padding=1)
        self.weight = torch.nn.Parameter(torch.randn(6, 8, 3, 3, generator=gen) * 0.1)
        self.bias = torch.nn.Parameter(torch.randn(6, generator=gen))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        om = self.offset_conv(x)
        return ops.deform_conv2d(x, om[:, :18], self.weight, self.bias, padding=1, mask=om[:, 18:].sigmoid())


@pytest.mark.parametrize("backend", ["native", "fallback"])
def test_bfloat16_autocast_on_a_float32_model(backend: str) -> None:
    """Under autocast the conv before the op yields bfloat16 and the weights stay float32: the op
    casts everything to bfloat16 (one dtype whatever the batch) instead of failing on the mix."""
    model = OffsetDCN().eval()
    x = torch.randn(3, 8, 10, 12, generator=torch.Generator().manual_seed(22))
    with torch.no_grad():
        expected = model(x)
        with ops.use_backend(backend), torch.autocast("cpu", dtype=torch.bfloat16):
            single = model(x[:1])
            batch = model(x)
    assert single.dtype == batch.dtype == torch.bfloat16
    torch.testing.assert_close(batch.float(), expected, atol=0.1, rtol=0.05)
    torch.testing.assert_close(single, batch[:1])


def test_fake_kernel_agrees_with_autocast() -> None:
    """torch.compile traces with fake tensors: under autocast they get the autocast dtype too."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x, offset, weight = torch.empty(2, 8, 9, 11), torch.empty(2, 18, 9, 11), torch.empty(6, 8, 3, 3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = native(x.bfloat16(), offset, weight, None, (1, 1), (1, 1), (1, 1), None)
        assert out.dtype == torch.bfloat16 and list(out.shape) == [2, 6, 9, 11]
        with pytest.raises(RuntimeError, match=r"offset has dtype torch\.float32 but input has torch\.bfloat16"):
            native(x.bfloat16(), offset, weight, None, (1, 1), (1, 1), (1, 1), None)


@cuda
def test_cuda_float32_stays_ieee_with_cudnn_tf32_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """cuDNN's TF32 switch is on by default; float32 DCN must still meet the float32 bound (matmul TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    case = make_case(torch.Generator().manual_seed(23), in_channels=64, out_channels=64, size=(24, 24),
                     dtype=torch.float32)
    on_gpu = {k: (v.cuda() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    torch.testing.assert_close(run_native(on_gpu).cpu().double(), reference(case), atol=1e-4, rtol=1e-4)
