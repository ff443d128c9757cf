"""The weak spots of issue 22, each with the named error (or the correct result) a user now gets.

Cheap by design: exported files are hand-made ONNX graphs with yolactpp metadata (no export is
traced here), detections are built from arrays, and every CLI case fails before a model loads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from yolactpp import PredictOptions
from yolactpp.cli import main
from yolactpp.concurrency import ModelBusyError
from yolactpp.config import ConfigError, ModelConfig, PreprocessConfig
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError
from yolactpp.predict_options import InvalidOptionError
from yolactpp.preprocess import InvalidImageError
from yolactpp.results import Detections

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from yolactpp.export import ExportFormatError, load_exported  # noqa: E402
from yolactpp.export.graph import INPUT_NAMES, output_names  # noqa: E402
from yolactpp.export.metadata import ExportInfo, write_metadata  # noqa: E402


def _tiny_config(size: int = 32) -> ModelConfig:
    from yolactpp.config import BackboneConfig

    return ModelConfig(name="tiny", backbone=BackboneConfig("resnet50"), class_names=("a", "b"),
                       preprocess=PreprocessConfig(size=size))  # fmt: skip


def _fake_export(path: Path, graph_size: int, metadata_config: dict) -> Path:
    """An ONNX file with the exported graph's inputs/outputs (Identity-wired) and given metadata."""
    helper, tp = onnx.helper, onnx.TensorProto
    config = _tiny_config(graph_size)
    inputs = [
        helper.make_tensor_value_info("images", tp.FLOAT, ["batch", 3, graph_size, graph_size]),
        helper.make_tensor_value_info("conf_threshold", tp.FLOAT, []),
        helper.make_tensor_value_info("iou_threshold", tp.FLOAT, []),
        helper.make_tensor_value_info("top_k", tp.INT64, []),
        helper.make_tensor_value_info("class_mask", tp.BOOL, [2]),
    ]
    outputs = [helper.make_tensor_value_info(name, tp.FLOAT, None) for name in output_names(config)]
    nodes = [helper.make_node("Identity", ["conf_threshold"], [name]) for name in output_names(config)]
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs), opset_imports=[helper.make_opsetid("", 19)])
    info = ExportInfo("onnx", "float32", 100, 200, INPUT_NAMES, output_names(config), 19, "test")
    for key, value in write_metadata(config, info).items():
        if key == "yolactpp.config":
            value = json.dumps({**json.loads(value), "preprocess": {**json.loads(value)["preprocess"], **metadata_config}})
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


# -- sizes and metadata checked at load -----------------------------------------------------------
def test_sizes_that_would_allocate_gigabytes_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"preprocess.size: must be an int from 1 to 2048, got 100000"):
        ModelConfig.from_dict({**_tiny_config().to_dict(), "preprocess": {"size": 100000}})
    with pytest.raises(ConfigError, match=r"detect\.top_k: must be an int from 1 to 2000, got 100000"):
        ModelConfig.from_dict({**_tiny_config().to_dict(), "detect": {"top_k": 100000}})
    with pytest.raises(ConfigError, match="fpn_channels: must be an int from 1 to 4096"):
        ModelConfig.from_dict({**_tiny_config().to_dict(), "fpn_channels": 10**6})
    with pytest.raises(ConfigError, match="anchors: must be at most 64 anchors per location"):
        ModelConfig.from_dict({**_tiny_config().to_dict(), "anchors": {"aspect_ratios": list(range(1, 100))}})
    with pytest.raises(InvalidOptionError, match="top_k must be from 1 to 2000"):
        PredictOptions(top_k=10**9)


def test_exported_metadata_is_checked_against_the_graph(tmp_path: Path) -> None:
    ok = _fake_export(tmp_path / "ok.onnx", 32, {})
    assert load_exported(ok).config.preprocess.size == 32
    altered = _fake_export(tmp_path / "altered.onnx", 32, {"size": 600})
    with pytest.raises(ExportFormatError, match=r"metadata says preprocess\.size 600 but the graph takes 32 x 32"):
        load_exported(altered)
    huge = _fake_export(tmp_path / "huge.onnx", 32, {"size": 100000})
    with pytest.raises(ExportFormatError, match=r"preprocess\.size: must be an int from 1 to 2048, got 100000"):
        load_exported(huge)


def test_load_exported_names_the_cause(tmp_path: Path) -> None:
    ok = _fake_export(tmp_path / "ok.onnx", 32, {})
    weights = tmp_path / "yolact_base_54_800000.pth"
    weights.write_bytes(b"PK\x03\x04 a torch zip")
    with pytest.raises(ExportFormatError, match="is a weights file, not an exported model"):
        load_exported(weights)
    with pytest.raises(ExportFormatError, match="is a folder"):
        load_exported(tmp_path)
    with pytest.raises(InvalidArgumentError, match="threads must be a whole number >= 1, got -1"):
        load_exported(ok, threads=-1)
    with pytest.raises(InvalidArgumentError, match=r"\['CUDAExecutionProvider'\] are not available here") as info:
        load_exported(ok, providers=["CUDAExecutionProvider"])
    assert "onnxruntime-gpu" in str(info.value)
    with pytest.raises(InvalidArgumentError, match="NoSuchProvider"):
        load_exported(ok, providers=["NoSuchProvider"])


# -- options, images, COCO, polygons -----------------------------------------------------------------
def test_prediction_options_named_or_accepted() -> None:
    with pytest.raises(InvalidOptionError, match=r"score_threshold must be between 0 and 1, got 2\.0"):
        PredictOptions(score_threshold=2.0)
    assert PredictOptions(classes=np.int64(2)).classes == (2,)
    assert PredictOptions(classes=[np.int32(1), "car"]).classes == (1, "car")
    with pytest.raises(InvalidOptionError, match="got bytes b'car'; decode it first"):
        PredictOptions(classes=b"car")


def test_a_truncated_pil_image_gets_the_library_error(tmp_path: Path) -> None:
    from PIL import Image

    from yolactpp.preprocess import to_rgb_array

    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(InvalidImageError, match=r"cannot read .*cut\.png as an image"):
        to_rgb_array(Image.open(path))


def _detections(masks: np.ndarray) -> Detections:
    n = len(masks)
    return Detections(
        boxes=np.tile(np.array([[1.0, 1.0, 9.0, 9.0]], np.float32), (n, 1)),
        scores=np.linspace(0.9, 0.5, n).astype(np.float32),
        labels=np.zeros(n, np.int64),
        names=("a",),
        image_size=masks.shape[1:],
        soft_masks=masks.astype(np.float32),
        masks=masks,
    )


def test_polygons_and_coco_records() -> None:
    pytest.importorskip("contourpy")
    pytest.importorskip("shapely")
    masks = np.zeros((2, 12, 12), bool)
    masks[0, 5, 5] = True  # one pixel: too small to outline
    masks[1, 2:8, 3:9] = True
    det = _detections(masks)
    outlines = det.polygons()
    assert outlines[0] == [] and len(outlines[1]) == 1
    records = det.to_coco(np.int64(7), polygons=True)
    assert isinstance(records[0]["segmentation"], dict), "the one-pixel mask keeps its RLE"
    assert isinstance(records[1]["segmentation"], list)
    assert json.loads(json.dumps(records))[0]["image_id"] == 7
    with pytest.raises(InvalidArgumentTypeError, match="image_id must be an int or a non-empty string, got None"):
        det.to_coco(None)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError, match="tolerance must be a number of pixels, got 'a'"):
        det.polygons(tolerance="a")  # type: ignore[arg-type]


def test_quantize_silences_onnxruntime_preprocessing_advice(caplog: pytest.LogCaptureFixture) -> None:
    from yolactpp.quantize.onnx_int8 import _quiet_preprocessing_advice

    with caplog.at_level(logging.WARNING), _quiet_preprocessing_advice():
        logging.warning("Please consider to run pre-processing before quantization. Refer to example: ...")
        logging.warning("something else")
    assert [r.getMessage() for r in caplog.records] == ["something else"]


# -- export arguments and threads ---------------------------------------------------------------------
def test_export_arguments_and_concurrency(v1_model, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentTypeError, match=r"max_detections must be a whole number, got 2\.5"):
        v1_model.export(tmp_path / "a.onnx", max_detections=2.5)
    with pytest.raises(InvalidArgumentTypeError, match="opset must be an int, got '22'"):
        v1_model.export(tmp_path / "a.onnx", opset="22")
    with pytest.raises(InvalidArgumentError, match="CUDA is not available here"):
        v1_model.export(tmp_path / "a.pt2", format="pt2", device="cuda")
    # while the model is traced for export, predictions and a second export wait their turn
    image = np.zeros((40, 40, 3), np.uint8)
    with v1_model._guard.converting("export"):
        with pytest.raises(ModelBusyError, match=r"being exported \(model.export"):
            v1_model.predict(image)
        with pytest.raises(ModelBusyError, match="already being exported"):
            v1_model.export(tmp_path / "b.onnx")
    with v1_model._guard.predicting(), pytest.raises(ModelBusyError, match="cannot export the model while 1"):
        v1_model.export(tmp_path / "c.onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_device_errors_are_one_line(tmp_path: Path, v1_checkpoint: Path, capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    assert main(["export", "-m", str(v1_checkpoint), "--format", "pt2", "--device", "cuda",
                 "-o", str(tmp_path / "m.pt2")]) == 2  # fmt: skip
    assert capsys.readouterr().err.strip() == (
        "yolactpp export: error: device 'cuda' requested but CUDA is not available here"
    )
    onnx_file = _fake_export(tmp_path / "ok.onnx", 32, {})
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "photo.png")
    assert main(["predict", str(tmp_path / "photo.png"), "-m", str(onnx_file), "--device", "cuda", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDAExecutionProvider" in err[0] and "not available" in err[0]
