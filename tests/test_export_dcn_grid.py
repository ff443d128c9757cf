"""The ONNX forms of the deformable convolution against eager, over a grid of configurations.

``yolactpp.ops.deform_conv2d`` is public: a plugin model may call it with weight groups, offset
groups, uneven stride/padding/dilation, any kernel shape, with or without mask and bias. Its ONNX
``DeformConv`` translation must write every one of those (weight groups were once written as 1:
the export succeeded and onnxruntime refused the file). All configurations are exported as one
small graph and run once on onnxruntime. The ``grid_sample`` form (for runtimes without
``DeformConv``) is checked on its contract, on NaN offsets, and refuses what it cannot express.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from yolactpp import ops
from yolactpp.errors import InvalidArgumentError
from yolactpp.export.dcn_grid_sample import deform_conv2d_grid_sample
from yolactpp.export.onnx_export import to_onnx

# (weight groups, offset groups, stride, padding, dilation, kernel (kh, kw), mask, bias)
CONFIGS = [
    (1, 1, (1, 1), (1, 1), (1, 1), (3, 3), True, True),
    (2, 1, (1, 1), (1, 1), (1, 1), (3, 3), True, True),
    (1, 2, (1, 1), (1, 1), (1, 1), (3, 3), True, False),
    (2, 2, (2, 1), (0, 2), (1, 2), (3, 3), True, False),
    (4, 1, (1, 2), (2, 1), (2, 1), (1, 3), False, True),
    (1, 4, (2, 2), (1, 0), (1, 1), (2, 2), False, False),
    (2, 4, (1, 1), (2, 2), (2, 2), (3, 1), True, True),
    (1, 1, (3, 2), (1, 1), (1, 3), (2, 3), False, True),
]
IN_CHANNELS, OUT_CHANNELS, SIZE = 8, 4, (9, 11)


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _case(config: tuple, gen: torch.Generator) -> tuple[dict, list[torch.Tensor]]:
    groups, offset_groups, stride, padding, dilation, (kh, kw), with_mask, with_bias = config
    ho = _out_size(SIZE[0], kh, stride[0], padding[0], dilation[0])
    wo = _out_size(SIZE[1], kw, stride[1], padding[1], dilation[1])
    taps = kh * kw
    x = torch.randn(2, IN_CHANNELS, *SIZE, generator=gen)
    offset = torch.randn(2, 2 * offset_groups * taps, ho, wo, generator=gen) * 1.5
    weight = torch.randn(OUT_CHANNELS, IN_CHANNELS // groups, kh, kw, generator=gen) * 0.3
    tensors = [x, offset, weight]
    if with_bias:
        tensors.append(torch.randn(OUT_CHANNELS, generator=gen))
    if with_mask:
        tensors.append(torch.rand(2, offset_groups * taps, ho, wo, generator=gen))
    spec = {"stride": stride, "padding": padding, "dilation": dilation, "bias": with_bias, "mask": with_mask}
    return spec, tensors


class _AllConfigs(torch.nn.Module):
    """One output per configuration; inputs are flattened in order."""

    def __init__(self, specs: list[dict]) -> None:
        super().__init__()
        self.specs = specs

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, i = [], 0
        for spec in self.specs:
            x, offset, weight = tensors[i : i + 3]
            i += 3
            bias = mask = None
            if spec["bias"]:
                bias, i = tensors[i], i + 1
            if spec["mask"]:
                mask, i = tensors[i], i + 1
            outputs.append(
                ops.deform_conv2d(x, offset, weight, bias, spec["stride"], spec["padding"], spec["dilation"], mask)
            )
        return tuple(outputs)


@pytest.fixture(scope="module")
def cases() -> tuple[list[dict], list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    specs, inputs = [], []
    for config in CONFIGS:
        spec, tensors = _case(config, gen)
        specs.append(spec)
        inputs += tensors
    return specs, inputs


def test_deform_conv_onnx_matches_eager_over_the_grid(cases, tmp_path) -> None:
    import onnxruntime as ort

    from yolactpp.ops._loader import native_available

    assert native_available(), "the native op (and so its custom translation) is what this test checks"
    specs, inputs = cases
    module = _AllConfigs(specs).eval()
    with torch.no_grad():
        expected = module(*inputs)
        program = torch.export.export(module, tuple(inputs), strict=False)
    names = [f"in{i}" for i in range(len(inputs))]
    outputs = [f"out{i}" for i in range(len(specs))]
    onnx_program = to_onnx(program, tmp_path / "dcn.onnx", 22, names, outputs)
    proto = onnx_program.model_proto
    deform = [n for n in proto.graph.node if n.op_type == "DeformConv"]
    assert len(deform) == len(CONFIGS)
    groups = sorted({a.i for n in deform for a in n.attribute if a.name == "group"})
    assert groups == [1, 2, 4], "weight groups are written, not assumed"
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(outputs, {n: t.numpy() for n, t in zip(names, inputs)})
    for config, want, have in zip(CONFIGS, expected, got):
        np.testing.assert_allclose(have, want.numpy(), rtol=1e-4, atol=1e-4, err_msg=str(config))


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[0] == 1 and c[1] == 1], ids=str)
def test_grid_sample_form_matches_the_op(config) -> None:
    spec, tensors = _case(config, torch.Generator().manual_seed(1))
    x, offset, weight = tensors[:3]
    rest = tensors[3:]
    bias = rest.pop(0) if spec["bias"] else None
    mask = rest.pop(0) if spec["mask"] else None
    offset[0, :, 1:3, 1:3] = float("nan")  # NaN offsets: the tap reads zero, as on every other path
    want = ops.deform_conv2d(x, offset, weight, bias, spec["stride"], spec["padding"], spec["dilation"], mask)
    got = deform_conv2d_grid_sample(x, offset, weight, bias, spec["stride"], spec["padding"], spec["dilation"], mask)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_grid_sample_form_names_its_contract() -> None:
    x = torch.randn(1, 4, 6, 6)
    offset, weight, mask = torch.zeros(1, 18, 6, 6), torch.randn(2, 4, 3, 3), torch.ones(1, 9, 6, 6)
    with pytest.raises(InvalidArgumentError, match="one weight group"):
        deform_conv2d_grid_sample(x, offset, torch.randn(2, 2, 3, 3), None, 1, 1, 1, mask)
    with pytest.raises(InvalidArgumentError, match="one offset group"):
        deform_conv2d_grid_sample(x, torch.zeros(1, 36, 6, 6), weight, None, 1, 1, 1, torch.ones(1, 18, 6, 6))
    with pytest.raises(InvalidArgumentError, match="stride must be an int or a pair"):
        deform_conv2d_grid_sample(x, offset, weight, None, (1, 1, 1), 1, 1, mask)

    from yolactpp.backbone.dcn import ModulatedDeformConv2d
    from yolactpp.export.dcn_grid_sample import use_grid_sample_dcn

    network = torch.nn.Sequential(ModulatedDeformConv2d(4, 4, offset_groups=2))
    with pytest.raises(InvalidArgumentError, match=r"0: the grid_sample DCN supports one offset group, this layer has 2"):
        use_grid_sample_dcn(network)
