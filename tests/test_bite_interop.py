"""Result, stream and int8 behaviour the earlier tests left unpinned (issue 23).

Failure positions past the first batch, ``to_supervision`` where scores differ from box scores
(YOLACT++), polygon order and coordinates worked out by hand, track ids over identical frames,
and which convolutions an int8 file keeps in float. The small YOLACT++-shaped model and its ONNX
file are the shared ``small_pp_model`` / ``small_pp_onnx`` fixtures of conftest.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from yolactpp.batching import check_stream_arguments, stream_predictions
from yolactpp.errors import PredictionFailure
from yolactpp.polygons import mask_to_polygons, polygon_area, polygons_to_coco
from yolactpp.results import Detections


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (120, 160, 3), dtype=np.uint8)


# -- PredictionFailure.index past the first batch -----------------------------------------------
def _stub_predict(arrays: list[np.ndarray], paths: list[str | None]) -> list[Detections]:
    """One empty detection per image, carrying its path (a model that finds nothing)."""
    out = []
    for array, path in zip(arrays, paths):
        det = Detections(
            boxes=np.zeros((0, 4), np.float32), scores=np.zeros(0, np.float32), labels=np.zeros(0, np.int64),
            names=("thing",), image_size=array.shape[:2], soft_masks=np.zeros((0, 2, 2), np.float32),
        )  # fmt: skip
        det.path = path
        out.append(det)
    return out


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4])
def test_failure_index_is_the_position_in_the_whole_stream(batch_size: int, tmp_path: Path) -> None:
    from PIL import Image

    good = tmp_path / "good.png"
    Image.new("RGB", (6, 5)).save(good)
    bad = [tmp_path / f"missing{i}.png" for i in range(3)]
    items = [good, good, bad[0], good, bad[1], good, good, bad[2]]  # failures at 2, 4 and 7 (the last)
    check_stream_arguments(batch_size, "yield")
    results = list(stream_predictions(items, batch_size, "yield", _stub_predict))
    assert len(results) == len(items)
    failures = [r for r in results if isinstance(r, PredictionFailure)]
    assert [f.index for f in failures] == [2, 4, 7]
    assert [f.source for f in failures] == [str(p) for p in bad]
    for position, result in enumerate(results):
        assert (result.index if isinstance(result, PredictionFailure) else result.path) == (
            position if isinstance(result, PredictionFailure) else str(items[position])
        )


def test_failure_index_past_the_first_batch_on_real_models(small_pp_model, small_pp_onnx, frame, tmp_path) -> None:
    from yolactpp.export import load_exported

    items = [frame, frame, tmp_path / "gone.png", frame, np.zeros((1, 1, 3), np.uint8)]  # bad at 2 and 4
    for model in (small_pp_model, load_exported(small_pp_onnx)):
        results = list(model.iter_predict(items, batch_size=2, on_error="yield", max_detections=3))
        assert [r.index for r in results if isinstance(r, PredictionFailure)] == [2, 4]
        assert [isinstance(r, Detections) for r in results] == [True, True, False, True, False]


# -- to_supervision on YOLACT++ -------------------------------------------------------------------
def test_to_supervision_uses_final_scores_on_yolact_plus_plus(small_pp_model, small_pp_onnx, frame) -> None:
    sv = pytest.importorskip("supervision")
    from yolactpp.export import load_exported

    eager = small_pp_model.predict(frame, max_detections=20)
    exported = load_exported(small_pp_onnx).predict(frame, max_detections=20)
    for det in (eager, exported):
        arrays = det.numpy()
        # the re-scored score is box score x mask IoU, and differs from the box score here
        np.testing.assert_allclose(arrays.scores, arrays.box_scores * arrays.mask_iou, rtol=1e-5, atol=1e-7)
        assert np.abs(arrays.scores - arrays.box_scores).min() > 1e-3
        converted = det.to_supervision()
        assert isinstance(converted, sv.Detections) and len(converted) == len(det) == 20
        np.testing.assert_allclose(converted.confidence, arrays.scores, rtol=1e-6)
        np.testing.assert_allclose(converted.xyxy, arrays.boxes, rtol=1e-6)
        np.testing.assert_array_equal(converted.class_id, arrays.labels)
        np.testing.assert_array_equal(converted.mask, arrays.masks)
        assert list(converted.data["class_name"]) == [("cat", "dog", "bird")[i] for i in arrays.labels]
        tracked = det._replace(track_ids=np.arange(len(det)) * 3 - 1)
        assert det.to_supervision().tracker_id is None
        assert tracked.to_supervision().tracker_id.tolist() == (np.arange(20) * 3 - 1).tolist()


# -- polygons: order and coordinates by hand -------------------------------------------------------
def test_polygon_parts_ordered_top_first_with_hand_computed_points() -> None:
    mask = np.zeros((30, 40), dtype=bool)
    mask[20, 3:5] = True  # C: a 1 x 2 bar, lowest, leftmost
    mask[2, 30:32] = True  # A: a 1 x 2 bar, highest, rightmost
    mask[9:12, 15] = True  # B: a 3 x 1 bar in the middle
    mask[9:11, 35] = True  # D: a 2 x 1 bar starting at B's top row, right of B
    mask[25, 20] = True  # a lone pixel: too small to outline, it gives no polygon (its RLE stays)
    outlines = mask_to_polygons(mask, tolerance=0)
    assert len(outlines) == 4
    a, b, d, c = (set(map(tuple, p.tolist())) for p in outlines)  # by top row, then by left column
    assert a == {(30, 2.5), (30.5, 2), (31.5, 2), (32, 2.5), (31.5, 3), (30.5, 3)}
    assert b == {(15.5, 9), (16, 9.5), (16, 10.5), (16, 11.5), (15.5, 12), (15, 11.5), (15, 10.5), (15, 9.5)}
    assert d == {(35.5, 9), (36, 9.5), (36, 10.5), (35.5, 11), (35, 10.5), (35, 9.5)}
    assert c == {(3, 20.5), (3.5, 20), (4.5, 20), (5, 20.5), (4.5, 21), (3.5, 21)}
    # areas: a pixel block of w x h pixels less its four corner triangles (1/8 each)
    assert [polygon_area(p) for p in outlines] == [2 - 0.5, 3 - 0.5, 2 - 0.5, 2 - 0.5]
    coco = polygons_to_coco(outlines)
    assert sorted(zip(coco[0][0::2], coco[0][1::2])) == sorted(a)


# -- track ids over identical frames ---------------------------------------------------------------
def _boxes_frame() -> Detections:
    boxes = torch.tensor([[10.0, 10, 50, 60], [100, 20, 150, 90], [200, 100, 260, 180]])
    return Detections(
        boxes=boxes, scores=torch.tensor([0.95, 0.9, 0.85]), labels=torch.tensor([0, 0, 1]), names=("a", "b"),
        image_size=(240, 320), soft_masks=torch.zeros(3, 4, 4),
    )  # fmt: skip


def _assert_confirmed_and_stable(frames: list[list[int]], n: int) -> None:
    assert frames[0] == [-1] * n  # nothing is confirmed on its first frame
    assert all(i >= 0 for i in frames[1]) and len(set(frames[1])) == n  # confirmed on the second, distinct
    assert all(ids == frames[1] for ids in frames[2:])  # and kept on every later identical frame


def test_track_ids_are_confirmed_and_stable_over_identical_frames() -> None:
    pytest.importorskip("trackers")
    from yolactpp.tracking import Tracker, with_tracks

    tracked = list(with_tracks(iter([_boxes_frame() for _ in range(5)]), True))
    _assert_confirmed_and_stable([d.track_ids.tolist() for d in tracked], 3)
    # the same boxes listed in another order: each id stays with its box, not with its row
    stable = tracked[-1].track_ids.tolist()
    order = [2, 0, 1]
    shuffled = list(with_tracks(iter([_boxes_frame(), _boxes_frame(), _boxes_frame()[order]]), True))
    assert shuffled[1].track_ids.tolist() == stable
    assert shuffled[2].track_ids.tolist() == [stable[i] for i in order]
    tracker = Tracker()
    first = [tracker.update(_boxes_frame()).track_ids.tolist() for _ in range(3)]
    tracker.reset()  # a new video: the old tracks are gone, ids are not confirmed on its first frame
    assert tracker.update(_boxes_frame()).track_ids.tolist() == [-1, -1, -1]
    _assert_confirmed_and_stable(first, 3)


def test_iter_predict_tracks_identical_frames(small_pp_model, small_pp_onnx, frame) -> None:
    pytest.importorskip("trackers")
    from yolactpp.export import load_exported
    from yolactpp.tracking import Tracker

    # random weights score < 0.5: ByteTrack's activation (0.7) is lowered to track them
    options = {"score_threshold": 0.15, "max_detections": 5, "iou_threshold": 0.3}
    for model in (small_pp_model, load_exported(small_pp_onnx)):
        tracker = Tracker(track_activation_threshold=0.1, high_conf_det_threshold=0.1)
        stream = list(model.iter_predict([frame] * 4, batch_size=2, track=tracker, **options))
        assert len(stream[0]) >= 3
        _assert_confirmed_and_stable([d.track_ids.tolist() for d in stream], len(stream[0]))


# -- int8: what is quantized, and where outputs stay float -------------------------------------------
#: Written out, not imported: the module scopes of the network's parts, and the head's output product.
NETWORK_PARTS = ("network.backbone", "network.fpn", "network.proto_net", "network.prediction_layers", "network.maskiou_net")
HEAD_PRODUCT = "head_outputs"


@pytest.fixture(scope="module")
def small_int8_form(small_pp_model, frame, tmp_path_factory):
    """The small YOLACT++ in the int8 form (float32), and its quantization with 8- and 7-bit weights."""
    pytest.importorskip("onnxruntime")
    from yolactpp.export import load_exported
    from yolactpp.export.onnx_export import write_onnx
    from yolactpp.quantize.onnx_int8 import quantize_onnx

    root = tmp_path_factory.mktemp("int8_form")
    float_path = write_onnx(small_pp_model, root / "form.onnx", form="int8", verify=False)
    float_model = load_exported(float_path)
    feeds = [float_model.input_feeds([frame]), float_model.input_feeds([frame[::-1]])]
    files = {bits: quantize_onnx(float_path, root / f"int8-{bits}.onnx", iter(feeds), calibration_count=2, weight_bits=bits) for bits in (8, 7)}
    return float_path, files


def _int8_weight(node, produced_by, initializers):
    """The int8 initializer a node's weight is dequantized from, or None (a float weight)."""
    source = produced_by.get(node.input[1])
    if source is None or source.op_type != "DequantizeLinear":
        return None
    return initializers.get(source.input[0])


def _scopes(node) -> str:
    return " ".join(p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes")


def test_int8_form_predicts_like_the_model(small_pp_model, frame) -> None:
    """The rewritten network (GridSample + 1x1 Conv DCN with its BatchNorm folded, one im2col
    product for the head outputs, ProtoNet's projection as a product) computes what the model computes."""
    from yolactpp.export._trace import example_inputs, prepare_graph

    standard = prepare_graph(small_pp_model, "float32", None, None, use_topk=True)
    rewritten = prepare_graph(small_pp_model, "float32", None, None, use_topk=True, form="int8")
    assert not any(type(m).__name__ == "ModulatedDeformConv2d" for m in rewritten.modules())
    inputs = list(example_inputs(standard, batch=2))
    inputs[0] = torch.randn(inputs[0].shape, generator=torch.Generator().manual_seed(3))
    inputs[1] = torch.tensor(0.01)
    with torch.no_grad():
        want, got = standard(*inputs), rewritten(*inputs)
    assert int(want[0].min()) >= 3  # detections to compare
    for name, a, b in zip(("count", "boxes", "scores", "box_scores", "labels", "soft_masks", "mask_iou"), want, got):
        if a.dtype.is_floating_point:
            torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-4, msg=name)
        else:
            assert torch.equal(a, b), name


def test_int8_file_quantizes_every_product_and_keeps_the_logits_float(small_int8_form, frame) -> None:
    import onnx
    from onnx import numpy_helper

    from yolactpp.export import load_exported
    from yolactpp.quantize.cpu import SlowInt8Warning

    _, files = small_int8_form
    for bits, path in files.items():
        proto = onnx.load(str(path))
        produced_by = {o: node for node in proto.graph.node for o in node.output}
        consumers: dict[str, list] = {}
        for node in proto.graph.node:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}

        convs = products = 0
        largest = 0
        for node in proto.graph.node:
            scope = _scopes(node)
            if node.op_type == "Conv" and any(part in scope for part in NETWORK_PARTS):
                weight = _int8_weight(node, produced_by, initializers)
                assert weight is not None and weight.dtype == np.int8, f"{node.name} ({scope}) should be int8"
                largest = max(largest, int(np.abs(weight.astype(np.int32)).max()))
                convs += 1
            elif node.op_type == "MatMul" and (HEAD_PRODUCT in scope or "network.proto_net" in scope):
                weight = _int8_weight(node, produced_by, initializers)
                assert weight is not None and weight.dtype == np.int8, f"{node.name} ({scope}) should be int8"
                assert produced_by[node.input[0]].op_type == "DequantizeLinear", f"{node.name}: input not quantized"
                after = [c.op_type for c in consumers.get(node.output[0], [])]
                assert "QuantizeLinear" not in after, f"{node.name}: logits / prototypes requantized ({after})"
                products += 1
        assert products == 6 and convs > 10  # a head product per FPN level (the head is shared), the prototypes
        assert not any(n.op_type == "DeformConv" for n in proto.graph.node)
        assert any(n.op_type == "GridSample" for n in proto.graph.node)  # the DCN samples in float
        assert any(n.op_type == "Conv" and "maskiou_net" in _scopes(n) for n in proto.graph.node)
        # 7-bit weights stay within +-64 (no 16-bit saturation), 8-bit ones use the full range
        assert largest <= 64 if bits == 7 else largest > 100, (bits, largest)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowInt8Warning)
            quantized_model = load_exported(path)
        assert quantized_model.info.dtype == "int8" and len(quantized_model.predict(frame, max_detections=5)) == 5


def test_quantizing_a_standard_export_is_refused(small_pp_onnx, frame, tmp_path) -> None:
    from yolactpp.export import load_exported
    from yolactpp.export.metadata import ExportFormatError
    from yolactpp.quantize.onnx_int8 import quantize_onnx

    feeds = [load_exported(small_pp_onnx).input_feeds([frame])]
    with pytest.raises(ExportFormatError, match="int8 form"):
        quantize_onnx(small_pp_onnx, tmp_path / "x.onnx", iter(feeds), calibration_count=1)
    assert not (tmp_path / "x.onnx").exists()
