"""Native FastNMS equals the pure-PyTorch reference bit for bit (float32 and float64)."""

from __future__ import annotations

import pytest
import torch

from tests.ops.conftest import cuda
from yolactpp import ops
from yolactpp.ops import fast_nms_reference


def native(*args):
    """The registered op (looked up at call time: the library loads in the session fixture)."""
    return torch.ops.yolactpp.fast_nms(*args)


def candidates(gen: torch.Generator, num: int, classes: int, dtype: torch.dtype, *, grid: bool = False,
               ties: bool = False, nans: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [num, 4] and scores [classes, num]; optional box grid (equal IoUs), score ties, NaNs."""
    xy = torch.rand(num, 2, generator=gen, dtype=torch.float64) * 100
    wh = torch.rand(num, 2, generator=gen, dtype=torch.float64) * 40
    boxes = torch.cat([xy, xy + wh], dim=1)
    if grid:
        boxes = (boxes / 8).round() * 8
    scores = torch.rand(classes, num, generator=gen, dtype=torch.float64)
    if ties:
        scores = (scores * 10).round() / 10
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    if nans and num > 3:
        scores[:, 1] = float("nan")
        boxes[2, 1] = float("nan")
    return boxes, scores


def assert_bitwise_equal(got: tuple, expected: tuple) -> None:
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
        if a.is_floating_point():
            bits = {torch.float16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}[a.dtype]
            assert torch.equal(a.view(bits), b.view(bits))
        else:
            assert torch.equal(a, b)


def random_cases(count: int, seed: int) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for i in range(count):
        cases.append(dict(
            seed=i,
            num=int(torch.randint(1, 300, (1,), generator=gen)),
            classes=int(torch.randint(1, 6, (1,), generator=gen)),
            grid=i % 3 == 0,
            ties=i % 4 == 0,
            nans=i % 5 == 0,
            threshold=[0.5, 0.3, 0.7, 0.0, 1.0, -0.1][i % 6],
            top_k=[200, 5, 1, 1000][i % 4],
            max_detections=[100, 3, 0, 10000][i % 4],
        ))
    return cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", random_cases(60, seed=0), ids=lambda c: f"case{c['seed']}")
def test_equals_reference_bit_for_bit(case: dict, dtype: torch.dtype) -> None:
    boxes, scores = candidates(torch.Generator().manual_seed(case["seed"]), case["num"], case["classes"], dtype,
                               grid=case["grid"], ties=case["ties"], nans=case["nans"])
    args = (boxes, scores, case["threshold"], case["top_k"], case["max_detections"])
    assert_bitwise_equal(native(*args), fast_nms_reference(*args))


def test_realistic_sizes_equal_reference() -> None:
    """80 classes, thousands of candidates (the model's case), transposed score view."""
    gen = torch.Generator().manual_seed(1)
    boxes, _ = candidates(gen, 3000, 1, torch.float32)
    conf = torch.softmax(torch.randn(3000, 81, generator=gen) * 2.5, dim=1)[:, 1:]
    scores = conf.t()  # non-contiguous, as detect() passes it
    assert_bitwise_equal(native(boxes, scores, 0.5, 200, 100), fast_nms_reference(boxes, scores, 0.5, 200, 100))


def test_threshold_is_compared_in_the_tensor_dtype() -> None:
    """An IoU of float32(0.3) > 0.3 (as a double) is not above the threshold in float32: kept."""
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 3.0]], dtype=torch.float32)
    scores = torch.tensor([[0.9, 0.8]], dtype=torch.float32)
    expected = fast_nms_reference(boxes, scores, 0.3, 10, 10)
    assert expected[0].tolist() == [0, 1]
    assert_bitwise_equal(native(boxes, scores, 0.3, 10, 10), expected)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iou_equal_to_the_threshold_is_kept(dtype: torch.dtype, device: str) -> None:
    """<=, not <: the exact-IoU case of tests/test_fast_nms_threshold.py on the kernels."""
    from tests.test_fast_nms_threshold import EXPECTED, edge_case

    boxes, scores = (t.to(device) for t in edge_case(dtype))
    for threshold, expected in EXPECTED.items():
        assert native(boxes, scores, threshold, 10, 10)[0].tolist() == expected, threshold


@pytest.mark.parametrize("shape", [(0, 0), (3, 0), (0, 5)])
def test_empty_inputs(shape: tuple[int, int]) -> None:
    classes, num = shape
    boxes, scores = torch.zeros(num, 4), torch.zeros(classes, num)
    out = native(boxes, scores, 0.5, 200, 100)
    assert [t.shape for t in out] == [(0,), (0,), (0,)]
    assert [t.dtype for t in out] == [torch.int64, torch.int64, torch.float32]
    assert_bitwise_equal(out, fast_nms_reference(boxes, scores, 0.5, 200, 100))


@pytest.mark.parametrize(
    ("boxes", "scores", "top_k", "message"),
    [
        (torch.zeros(5, 3), torch.zeros(2, 5), 10, r"boxes must be \[K, 4\]"),
        (torch.zeros(5, 4), torch.zeros(2, 4), 10, r"scores must be \[C, K\] with K = 5"),
        (torch.zeros(5, 4), torch.zeros(2, 5, dtype=torch.float64), 10, "must have the same dtype"),
        (torch.zeros(5, 4, dtype=torch.float16), torch.zeros(2, 5, dtype=torch.float16), 10, "float32 or float64"),
        (torch.zeros(5, 4), torch.zeros(2, 5), 0, "top_k must be >= 1"),
    ],
)
def test_clear_errors(boxes, scores, top_k: int, message: str) -> None:
    with pytest.raises(RuntimeError, match=message):
        native(boxes, scores, 0.5, top_k, 10)


def test_public_wrapper_uses_the_kernel_for_float_and_reference_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes, scores = candidates(torch.Generator().manual_seed(2), 50, 3, torch.float32)
    calls = []
    real = torch.ops.yolactpp.fast_nms
    monkeypatch.setattr(torch.ops.yolactpp, "fast_nms", lambda *a: calls.append(a[0].dtype) or real(*a))
    assert_bitwise_equal(ops.fast_nms(boxes, scores, 0.5, 20, 10), fast_nms_reference(boxes, scores, 0.5, 20, 10))
    half = ops.fast_nms(boxes.half(), scores.half(), 0.5, 20, 10)  # no half kernel: the reference runs
    assert_bitwise_equal(half, fast_nms_reference(boxes.half(), scores.half(), 0.5, 20, 10))
    assert calls == [torch.float32]


def test_opcheck() -> None:
    for dtype in (torch.float32, torch.float64):
        boxes, scores = candidates(torch.Generator().manual_seed(3), 40, 4, dtype, ties=True)
        torch.library.opcheck(torch.ops.yolactpp.fast_nms.default, (boxes, scores, 0.5, 10, 15))
    torch.library.opcheck(torch.ops.yolactpp.fast_nms.default, (torch.zeros(0, 4), torch.zeros(2, 0), 0.5, 10, 15))


def test_export_has_a_data_dependent_length() -> None:
    """torch.export traces through the fake kernel; the output length is an unbacked symbol <= max_detections."""

    class Detect(torch.nn.Module):
        def forward(self, boxes: torch.Tensor, scores: torch.Tensor):
            return torch.ops.yolactpp.fast_nms(boxes, scores, 0.5, 20, 7)

    boxes, scores = candidates(torch.Generator().manual_seed(4), 60, 3, torch.float32)
    program = torch.export.export(Detect(), (boxes, scores))
    node = next(n for n in program.graph.nodes if n.op == "call_function" and "fast_nms" in str(n.target))
    length = node.meta["val"][0].shape[0]
    assert isinstance(length, torch.SymInt) and not length.node.has_hint()
    assert_bitwise_equal(program.module()(boxes, scores), fast_nms_reference(boxes, scores, 0.5, 20, 7))


def test_torch_compile_fullgraph() -> None:
    boxes, scores = candidates(torch.Generator().manual_seed(5), 80, 3, torch.float64)
    compiled = torch.compile(lambda b, s: ops.fast_nms(b, s, 0.5, 30, 20), backend="aot_eager", fullgraph=True)
    assert_bitwise_equal(compiled(boxes, scores), fast_nms_reference(boxes, scores, 0.5, 30, 20))


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", random_cases(20, seed=1), ids=lambda c: f"case{c['seed']}")
def test_cuda_equals_reference_bit_for_bit(case: dict, dtype: torch.dtype) -> None:
    boxes, scores = candidates(torch.Generator().manual_seed(case["seed"]), case["num"], case["classes"], dtype,
                               grid=case["grid"], ties=case["ties"], nans=case["nans"])
    args = (boxes.cuda(), scores.cuda(), case["threshold"], case["top_k"], case["max_detections"])
    assert_bitwise_equal(native(*args), fast_nms_reference(*args))


@cuda
def test_cuda_opcheck() -> None:
    boxes, scores = candidates(torch.Generator().manual_seed(6), 40, 4, torch.float32)
    torch.library.opcheck(torch.ops.yolactpp.fast_nms.default, (boxes.cuda(), scores.cuda(), 0.5, 10, 15))
