"""Export paths the default-export tests leave unchecked (issue 23).

Each test pairs the exported-vs-eager comparison with an expectation that does not come from the
library: hand-computed values, literal settings, or a property of the graph or of the file.
The small YOLACT++-shaped model and its default ONNX file are shared with the other export tests
(``small_pp_model`` / ``small_pp_onnx`` in conftest.py); one more ONNX file is written here, with
every export setting away from its default, and it serves both the ``grid_sample`` and the
metadata tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx

import yolactpp
from tests.test_export import assert_same_detections
from yolactpp.config import DetectConfig, PreprocessConfig
from yolactpp.detect.detect import detect
from yolactpp.detect.padded import padded_detect
from yolactpp.export import ExportInfo, load_exported
from yolactpp.numpy_ops import preprocess as numpy_preprocess
from yolactpp.preprocess import preprocess as torch_preprocess

#: The non-default export settings of ``grid_onnx`` (none equals its default or another's value).
GRID_SETTINGS = {"deform_conv": "grid_sample", "max_detections": 7, "top_k": 13, "opset": 20}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)]


@pytest.fixture(scope="module")
def grid_onnx(small_pp_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_pp_model.export(tmp_path_factory.mktemp("grid") / "grid.onnx", format="onnx", **GRID_SETTINGS)


# -- preprocessing without mean/std (DarkNet) -------------------------------------------------------
def test_numpy_preprocessing_without_mean_std_matches_torch_and_hand_values() -> None:
    from yolactpp.zoo import yolact_darknet53

    darknet = yolact_darknet53().preprocess
    assert darknet.mean is None and darknet.std is None  # the configs this path serves
    config = PreprocessConfig(size=37, mean=None, std=None)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (50, 64, 3), dtype=np.uint8), rng.integers(0, 256, (20, 15, 3), dtype=np.uint8)]
    got = numpy_preprocess(arrays, config)
    want = torch_preprocess(arrays, config).tensor.numpy()
    assert got.dtype == np.float32 and got.shape == want.shape == (2, 3, 37, 37)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)

    # Hand-computed: a 1 x 2 image [0, 255] (R) / [255, 0] (G) / 102 (B) resized to 4 x 4, bilinear
    # with align_corners=False, reads [0, 1/4, 3/4, 1] x 255 along x; then / 255, channels kept RGB.
    tiny = np.zeros((1, 2, 3), dtype=np.uint8)
    tiny[0, :, 0] = (0, 255)
    tiny[0, :, 1] = (255, 0)
    tiny[0, :, 2] = 102
    ramp = np.array([0.0, 0.25, 0.75, 1.0], dtype=np.float32)
    expected = np.stack([np.tile(ramp, (4, 1)), np.tile(ramp[::-1], (4, 1)), np.full((4, 4), 0.4, np.float32)])
    small = PreprocessConfig(size=4, mean=None, std=None)
    for out in (numpy_preprocess([tiny], small), torch_preprocess([tiny], small).tensor.numpy()):
        np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-6)

    # and with mean/std (ResNet): a pixel equal to the mean becomes 0, mean + std becomes 1
    resnet = PreprocessConfig(size=2, mean=(100.0, 50.0, 10.0), std=(20.0, 5.0, 2.0))
    pixels = np.array([[[100, 55, 12]]], dtype=np.uint8)
    for out in (numpy_preprocess([pixels], resnet), torch_preprocess([pixels], resnet).tensor.numpy()):
        np.testing.assert_allclose(out[0, :, 0, 0], [0.0, 1.0, 1.0], rtol=0, atol=1e-6)


# -- DCN as GridSample ---------------------------------------------------------------------------
def test_grid_sample_dcn_equals_torchvision_and_plain_conv() -> None:
    """The grid_sample formulation against two independent definitions of DCNv2."""
    from torchvision.ops import deform_conv2d

    from yolactpp.export.dcn_grid_sample import deform_conv2d_grid_sample

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 9, 11, generator=gen)
    weight = torch.randn(5, 4, 3, 3, generator=gen)
    bias = torch.randn(5, generator=gen)
    for stride, padding, dilation in ((1, 1, 1), (2, 1, 1), (1, 2, 2)):
        ho = (9 + 2 * padding - dilation * 2 - 1) // stride + 1
        wo = (11 + 2 * padding - dilation * 2 - 1) // stride + 1
        offset = torch.randn(2, 18, ho, wo, generator=gen) * 1.5  # taps move by pixels, some leave the image
        mask = torch.rand(2, 9, ho, wo, generator=gen)
        got = deform_conv2d_grid_sample(x, offset, weight, bias, stride, padding, dilation, mask)
        want = deform_conv2d(x, offset, weight, bias, (stride, stride), (padding, padding), (dilation, dilation), mask)
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # zero offsets and a mask of ones: an ordinary convolution
        still = deform_conv2d_grid_sample(
            x, torch.zeros_like(offset), weight, bias, stride, padding, dilation, torch.ones_like(mask)
        )
        plain = torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=padding, dilation=dilation)
        torch.testing.assert_close(still, plain, atol=1e-4, rtol=1e-4)


def test_grid_sample_export_predicts_like_eager(grid_onnx: Path, small_pp_model, images: list[np.ndarray]) -> None:
    proto = onnx.load(str(grid_onnx))
    ops = {n.op_type for n in proto.graph.node}
    assert "GridSample" in ops and "DeformConv" not in ops
    exported = load_exported(grid_onnx, threads=2)
    # The file's own limits (top_k 13 < the candidates per class) are the defaults of its predict.
    want = small_pp_model.predict(images, top_k=13, max_detections=7)
    for eager, got in zip(want, exported.predict(images)):
        assert len(got) == 7  # hand expectation: the cap of the file, reached on random weights
        assert_same_detections(eager, got)
        # This model's three DCN layers move its outputs little: sampling at the wrong place (x and
        # y offsets swapped) changes box scores by ~9e-5 and boxes by ~1e-3 px, under the tolerance
        # above. The two graphs agree to 1e-7 and 2e-6 px (measured), so compare 20-50x above that.
        np.testing.assert_allclose(got.boxes, eager.boxes.numpy(), atol=1e-4, rtol=0)
        for name in ("scores", "box_scores", "mask_iou"):
            np.testing.assert_allclose(getattr(got, name), getattr(eager, name).numpy(), atol=2e-6, rtol=0)


# -- metadata, field by field --------------------------------------------------------------------
def expected_info(fmt: str, opset: int | None, max_detections: int, top_k: int) -> ExportInfo:
    """What an export of the small model must record, written out (not read from the exporter)."""
    return ExportInfo(
        format=fmt,
        dtype="float32",
        max_detections=max_detections,
        top_k=top_k,
        inputs=("images", "conf_threshold", "iou_threshold", "top_k", "class_mask"),
        outputs=("count", "boxes", "scores", "box_scores", "labels", "soft_masks", "mask_iou"),
        opset=opset,
        yolactpp_version=yolactpp.__version__,
    )


def assert_metadata_describes(metadata: dict[str, str], model, info: ExportInfo) -> None:
    """The raw metadata strings against the source model and the expected settings, key by key."""
    from yolactpp.export.metadata import read_metadata

    assert metadata["yolactpp.format"] == "yolactpp-export/1"
    assert metadata["yolactpp.version"] == yolactpp.__version__
    raw = json.loads(metadata["yolactpp.config"])
    source = model.config
    assert raw == json.loads(json.dumps(source.to_dict()))
    assert raw["name"] == source.name and tuple(raw["class_names"]) == source.class_names == ("cat", "dog", "bird")
    assert raw["preprocess"] == {"size": 96, "mean": list(source.preprocess.mean), "std": list(source.preprocess.std)}
    assert raw["detect"] == {"conf_threshold": 0.05, "iou_threshold": 0.5, "top_k": 200, "max_detections": 100}
    assert raw["mask_dim"] == source.mask_dim == 8 and raw["fpn_channels"] == source.fpn_channels == 32
    settings = json.loads(metadata["yolactpp.export"])
    for field in ("format", "dtype", "max_detections", "top_k", "opset"):
        assert settings[field] == getattr(info, field), field
    assert tuple(settings["inputs"]) == info.inputs and tuple(settings["outputs"]) == info.outputs
    config, read = read_metadata(metadata, "test")
    assert config == source
    for field in ExportInfo.__dataclass_fields__:
        assert getattr(read, field) == getattr(info, field), field


def test_onnx_metadata_matches_the_source_model_field_by_field(
    grid_onnx: Path, small_pp_onnx: Path, small_pp_model
) -> None:
    for path, info in (
        (grid_onnx, expected_info("onnx", 20, max_detections=7, top_k=13)),
        (small_pp_onnx, expected_info("onnx", 22, max_detections=100, top_k=200)),
    ):
        proto = onnx.load(str(path))
        assert_metadata_describes({p.key: p.value for p in proto.metadata_props}, small_pp_model, info)
        assert load_exported(path).info == info
        # the graph agrees with what the metadata says about it
        assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == info.opset
        assert [o.name for o in proto.graph.output] == list(info.outputs)
        scores = next(o for o in proto.graph.output if o.name == "scores")
        assert scores.type.tensor_type.shape.dim[1].dim_value == info.max_detections


# -- padded detection with top_k below the candidate count -----------------------------------------
def _hand_case() -> tuple[torch.Tensor, ...]:
    """One class; boxes A and B overlap (IoU 0.82), C and D stand apart, E is under conf_threshold."""
    priors = torch.tensor(
        [
            [0.25, 0.25, 0.2, 0.2],  # A 0.9
            [0.26, 0.25, 0.2, 0.2],  # B 0.8, suppressed by A
            [0.75, 0.75, 0.2, 0.2],  # C 0.7
            [0.25, 0.75, 0.2, 0.2],  # D 0.6
            [0.75, 0.25, 0.2, 0.2],  # E 0.02
        ]
    )
    conf = torch.tensor([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.4, 0.6], [0.98, 0.02]])
    loc = torch.zeros(5, 4)
    coefficients = torch.arange(5, dtype=torch.float32).view(5, 1)  # coefficient = prior index
    return loc, conf, coefficients, priors


@pytest.mark.parametrize("use_topk", [False, True], ids=["sort", "topk"])
def test_padded_detection_top_k_by_hand(use_topk: bool) -> None:
    loc, conf, coefficients, priors = _hand_case()
    # top_k cuts each class's candidates before FastNMS: B (suppressed) still takes a place.
    expected = {1: [0.9], 2: [0.9], 3: [0.9, 0.7], 4: [0.9, 0.7, 0.6], 200: [0.9, 0.7, 0.6]}
    priors_of = {1: [0], 2: [0], 3: [0, 2], 4: [0, 2, 3], 200: [0, 2, 3]}
    for top_k, scores in expected.items():
        det = padded_detect(
            loc[None], conf[None], coefficients[None], priors,
            conf_threshold=torch.tensor(0.05), iou_threshold=torch.tensor(0.5), top_k=torch.tensor(top_k),
            class_mask=torch.ones(1, dtype=torch.bool), max_top_k=200, max_detections=4, use_topk=use_topk,
        )  # fmt: skip
        n = int(det.count[0])
        assert n == len(scores), top_k
        torch.testing.assert_close(det.scores[0, :n], torch.tensor(scores))
        assert det.coefficients[0, :n, 0].tolist() == priors_of[top_k]
        eager = detect(loc, conf, coefficients, priors, DetectConfig(top_k=top_k, max_detections=4))
        assert eager.scores.tolist() == det.scores[0, :n].tolist()


@pytest.mark.parametrize("use_topk", [False, True], ids=["sort", "topk"])
def test_padded_detection_equals_detect_when_top_k_cuts(use_topk: bool) -> None:
    """Many candidates per class (hundreds above conf_threshold), top_k far below that count."""
    gen = torch.Generator().manual_seed(3)
    batch, priors_n, classes = 2, 300, 3
    priors = torch.rand(priors_n, 4, generator=gen) * torch.tensor([1.0, 1.0, 0.3, 0.3]) + torch.tensor([0, 0, 0.05, 0.05])
    loc = torch.randn(batch, priors_n, 4, generator=gen) * 0.5
    conf = torch.softmax(torch.randn(batch, priors_n, classes + 1, generator=gen) * 2, dim=-1)
    coefficients = torch.randn(batch, priors_n, 4, generator=gen)
    assert int((conf[0, :, 1:].amax(-1) > 0.05).sum()) > 200
    cases = [(1, 100, (0, 1, 2)), (5, 100, (0, 1, 2)), (17, 10, (0, 1, 2)), (40, 100, (0, 1, 2)), (5, 100, (0, 2)), (17, 10, (1,))]
    for top_k, max_detections, chosen in cases:
        class_mask = torch.zeros(classes, dtype=torch.bool)
        class_mask[list(chosen)] = True
        det = padded_detect(
            loc, conf, coefficients, priors,
            conf_threshold=torch.tensor(0.05), iou_threshold=torch.tensor(0.5), top_k=torch.tensor(top_k),
            class_mask=class_mask, max_top_k=64, max_detections=max_detections, use_topk=use_topk,
        )  # fmt: skip
        settings = DetectConfig(top_k=top_k, max_detections=max_detections)
        columns = [0, *(c + 1 for c in chosen)]  # eager: the background and the chosen classes' columns only
        for b in range(batch):
            want = detect(loc[b], conf[b][:, columns], coefficients[b], priors, settings)
            n = int(det.count[b])
            assert n == len(want) <= min(len(chosen) * top_k, max_detections)
            torch.testing.assert_close(det.scores[b, :n], want.scores)
            torch.testing.assert_close(det.boxes[b, :n], want.boxes)
            assert det.labels[b, :n].tolist() == [chosen[i] for i in want.labels.tolist()]
            torch.testing.assert_close(det.coefficients[b, :n], want.coefficients)


def test_exported_top_k_option_cuts_like_eager(small_pp_onnx: Path, small_pp_model, images) -> None:
    exported = load_exported(small_pp_onnx, threads=2)
    for top_k in (1, 3):
        got = exported.predict(images, top_k=top_k)
        want = small_pp_model.predict(images, top_k=top_k)
        for eager, det in zip(want, got):
            assert 0 < len(det) <= 3 * top_k  # hand bound: 3 classes, top_k candidates each
            assert_same_detections(eager, det)
