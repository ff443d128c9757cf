"""FastNMS keeps a box whose IoU with a higher-scored box *equals* the threshold (``<=``, not ``<``).

The original keeps iff max IoU <= nms_thresh. The cases use boxes whose IoUs are exact in every
float format (8 / 16 = 0.5), so the comparison itself is what is tested. The native kernels get the
same cases in tests/ops/test_fast_nms.py (those need the compiled library); these run on the
pure-PyTorch path that every install has.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from yolactpp import ops
from yolactpp.ops import fast_nms_reference

# Box 1 overlaps box 0 by 16 of 32 pixels: IoU = 0.5 exactly.
# Box 2 overlaps box 1 only: IoU(2, 1) = 8 / 32 = 0.25, IoU(2, 0) = 0.
EDGE_BOXES = [[0.0, 0.0, 6.0, 4.0], [2.0, 0.0, 8.0, 4.0], [6.0, 0.0, 10.0, 4.0]]
EDGE_SCORES = [[0.9, 0.8, 0.7]]

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]


def edge_case(dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(EDGE_BOXES, dtype=dtype), torch.tensor(EDGE_SCORES, dtype=dtype)


# threshold -> indices kept. 0.5 = IoU(1, 0): kept; 0.4375 (7/16) < 0.5: box 1 suppressed. Box 2's
# IoU 0.25 is with box 1, so it survives 0.25 but not 0.1875 (3/16), even though box 1 itself is
# suppressed there: FastNMS lets suppressed boxes suppress (the original's triu + column max).
EXPECTED = {0.5: [0, 1, 2], 0.4375: [0, 2], 0.25: [0, 2], 0.1875: [0]}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("threshold", sorted(EXPECTED), ids=lambda t: f"thr{t}")
def test_reference_keeps_iou_equal_to_threshold(dtype: torch.dtype, threshold: float) -> None:
    boxes, scores = edge_case(dtype)
    index, labels, kept = fast_nms_reference(boxes, scores, threshold, 10, 10)
    assert index.tolist() == EXPECTED[threshold]
    assert labels.tolist() == [0] * len(EXPECTED[threshold])
    assert kept.tolist() == scores[0, EXPECTED[threshold]].tolist()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_fallback_backend_keeps_iou_equal_to_threshold(dtype: torch.dtype) -> None:
    """The public op on the fallback backend (what runs when the native library is not built)."""
    boxes, scores = edge_case(dtype)
    with ops.use_backend("fallback"):
        for threshold, expected in EXPECTED.items():
            assert ops.fast_nms(boxes, scores, threshold, 10, 10)[0].tolist() == expected, threshold


def test_detect_passes_the_iou_threshold_through() -> None:
    """detect() -> FastNMS on the fallback backend: the equal-IoU box survives at iou_threshold 0.5."""
    from yolactpp.config import DetectConfig
    from yolactpp.detect import detect

    # Priors = the boxes themselves (cx, cy, w, h) with zero deltas, so the decoded boxes are exact.
    boxes = torch.tensor(EDGE_BOXES, dtype=torch.float64) / 16
    priors = torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], dim=1)
    conf = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]], dtype=torch.float64)  # background first
    coefficients = torch.arange(3, dtype=torch.float64)[:, None]
    settings = DetectConfig(top_k=10, conf_threshold=0.05, iou_threshold=0.5, max_detections=10)
    with ops.use_backend("fallback"):
        raw = detect(torch.zeros(3, 4, dtype=torch.float64), conf, coefficients, priors, settings)
        assert raw.coefficients[:, 0].tolist() == [0.0, 1.0, 2.0]
        torch.testing.assert_close(raw.boxes, boxes, rtol=0, atol=1e-15)
        tighter = DetectConfig(top_k=10, conf_threshold=0.05, iou_threshold=0.4375, max_detections=10)
        assert detect(torch.zeros(3, 4, dtype=torch.float64), conf, coefficients, priors, tighter).coefficients[
            :, 0
        ].tolist() == [0.0, 2.0]


def _padded_inputs() -> dict[str, torch.Tensor]:
    """The edge case as one image for padded_detect (the exported graphs' FastNMS): priors = boxes."""
    boxes = torch.tensor(EDGE_BOXES) / 16
    return {
        "loc": torch.zeros(1, 3, 4),
        "conf": torch.tensor([[[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]]]),
        "coefficients": torch.arange(3.0).view(1, 3, 1),  # identifies each prior in the output
        "priors": torch.cat([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], dim=1),
        "conf_threshold": torch.tensor(0.05),
        "top_k": torch.tensor(10),
        "class_mask": torch.ones(1, dtype=torch.bool),
    }


class _PaddedStage(torch.nn.Module):
    """The FastNMS stage of the exported DeploymentGraph (padded_detect with ONNX TopK)."""

    def forward(self, loc, conf, coefficients, priors, conf_threshold, top_k, class_mask, iou_threshold):  # type: ignore[no-untyped-def]
        from yolactpp.detect.padded import padded_detect

        det = padded_detect(
            loc, conf, coefficients, priors, conf_threshold=conf_threshold, iou_threshold=iou_threshold,
            top_k=top_k, class_mask=class_mask, max_top_k=10, max_detections=10, use_topk=True,
        )  # fmt: skip
        return det.count, det.coefficients


@pytest.mark.parametrize("use_topk", [False, True], ids=["sort", "topk"])
def test_padded_detect_keeps_iou_equal_to_threshold(use_topk: bool) -> None:
    from yolactpp.detect.padded import padded_detect

    for threshold, expected in EXPECTED.items():
        limits = {"max_top_k": 10, "max_detections": 10, "use_topk": use_topk}
        det = padded_detect(**_padded_inputs(), iou_threshold=torch.tensor(threshold), **limits)
        assert det.coefficients[0, : int(det.count[0]), 0].tolist() == expected, threshold


def test_exported_onnx_graph_keeps_iou_equal_to_threshold() -> None:
    """The same case through the project's ONNX export path and onnxruntime."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from yolactpp.export.onnx_export import DEFAULT_OPSET, to_onnx

    inputs = {**_padded_inputs(), "iou_threshold": torch.tensor(0.5)}
    program = torch.export.export(_PaddedStage(), tuple(inputs.values()), strict=False)
    onnx_program = to_onnx(program, None, DEFAULT_OPSET, list(inputs), ["count", "kept"])  # type: ignore[arg-type]
    session = ort.InferenceSession(onnx_program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in inputs.items()}
    for threshold, expected in EXPECTED.items():
        count, coefficients = session.run(None, {**feeds, "iou_threshold": np.array(threshold, dtype=np.float32)})
        assert coefficients[0, : int(count[0]), 0].tolist() == expected, threshold
