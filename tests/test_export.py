"""Export to ONNX and prediction with the exported file (onnxruntime, no torch).

One small YOLACT++-shaped model (DCN blocks, mask re-scoring, 3 classes, 96 px input) is exported
once; its ONNX predictions must equal the float32 eager model's. Full-size models and the pt2
packages (minutes of AOTInductor compilation) are checked by benchmarks/bench_export.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx

from yolactpp.backbone.resnet import ResNet
from yolactpp.config import AnchorConfig, BackboneConfig, ModelConfig, PreprocessConfig
from yolactpp.export import ExportError, ExportFormatError, load_exported
from yolactpp.model import YolactPP
from yolactpp.registry import register_backbone

SRC = Path(__file__).resolve().parent.parent / "src"


@register_backbone("export_test_resnet", overwrite=True)
def _small_resnet(cfg: BackboneConfig) -> ResNet:
    return ResNet((1, 1, 1, 1), cfg.dcn_layers, cfg.dcn_interval)


def small_config() -> ModelConfig:
    """YOLACT++ in miniature: DCN in stages 2-4, 3 anchor ratios, mask re-scoring, 3 classes."""
    return ModelConfig(
        name="export_test_small",
        backbone=BackboneConfig("export_test_resnet", dcn_layers=(0, 1, 1, 1)),
        preprocess=PreprocessConfig(size=96),
        anchors=AnchorConfig(scales=((12.0,), (24.0,), (48.0,), (96.0,), (192.0,)), square=False),
        class_names=("cat", "dog", "bird"),
        fpn_channels=32,
        mask_dim=8,
        maskiou_channels=(4, 8),
    )


def small_model() -> YolactPP:
    """Random weights with realistic magnitudes (unit-variance activations, BN stats near identity)."""
    gen = torch.Generator().manual_seed(0)
    model = YolactPP(small_config())
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            scale = 0.3 if p.dim() == 1 else fan_in**-0.5
            if "conv_offset_mask" in name:
                scale *= 0.5  # offsets of about a pixel: the deformable sampling really moves
            p.copy_(torch.randn(p.shape, generator=gen) * scale)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 1.5, generator=gen)
            elif name.endswith("running_mean"):
                b.uniform_(-0.1, 0.1, generator=gen)
    return model


@pytest.fixture(scope="module")
def model(small_pp_model: YolactPP) -> YolactPP:
    return small_pp_model  # = small_model(), built once per session (conftest.py)


@pytest.fixture(scope="module")
def onnx_path(small_pp_onnx: Path) -> Path:
    return small_pp_onnx  # its default ONNX export, shared with the other export tests


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)]


def assert_same_detections(eager, exported) -> None:
    """Same count, order and classes; boxes within 0.05 px, scores within 1e-4; masks nearly equal."""
    assert len(exported) == len(eager) > 0
    np.testing.assert_array_equal(exported.labels, eager.labels.numpy())
    np.testing.assert_allclose(exported.boxes, eager.boxes.numpy(), atol=0.05, rtol=0)
    np.testing.assert_allclose(exported.scores, eager.scores.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(exported.box_scores, eager.box_scores.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(exported.mask_iou, eager.mask_iou.numpy(), atol=1e-4, rtol=0)
    differing = (np.asarray(exported.masks) != eager.masks.numpy()).mean()
    assert differing < 1e-4, f"{differing:.2e} of mask pixels differ"


def test_onnx_graph_is_standard_and_self_describing(onnx_path: Path, model: YolactPP) -> None:
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto)
    assert {n.domain for n in proto.graph.node} <= {"", "ai.onnx"}, "only standard ONNX ops"
    ops = {n.op_type for n in proto.graph.node}
    assert "DeformConv" in ops and "TopK" in ops
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 19
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value, "dynamic batch"
    exported = load_exported(onnx_path)
    assert exported.config == model.config
    assert exported.info.max_detections == 100 and exported.info.format == "onnx"


@pytest.mark.parametrize(
    "options",
    [{}, {"classes": ["dog", "bird"], "max_detections": 7, "score_threshold": 0.02, "iou_threshold": 0.3}],
    ids=["defaults", "classes-cap-thresholds"],
)
def test_onnx_predictions_equal_eager(
    onnx_path: Path, model: YolactPP, images: list[np.ndarray], options: dict
) -> None:
    exported = load_exported(onnx_path, threads=2)
    # A batch of two images of different sizes through the dynamic batch dimension.
    for eager, got in zip(model.predict(images, **options), exported.predict(images, **options)):
        assert_same_detections(eager, got)
        assert got.image_size == eager.image_size
    single = exported.predict(images[1], **options)
    assert_same_detections(model.predict(images[1], **options), single)


def test_onnx_stream_and_option_errors(onnx_path: Path, images: list[np.ndarray]) -> None:
    exported = load_exported(onnx_path)
    stream = list(exported.iter_predict(iter(images * 2), batch_size=3))
    assert [d.image_size for d in stream] == [(120, 160), (90, 70)] * 2
    tolerant = list(exported.iter_predict([images[0], "missing.png", images[1]], batch_size=2, on_error="yield"))
    assert [type(r).__name__ for r in tolerant] == ["Detections", "PredictionFailure", "Detections"]
    pytest.importorskip("trackers")
    tracked = list(exported.iter_predict(iter([images[0]] * 2), track=True))  # the same surface as YolactPP
    assert all(isinstance(d.track_ids, np.ndarray) and len(d.track_ids) == len(d) for d in tracked)
    with pytest.raises(ValueError, match="max_detections=150 is above the 100"):
        exported.predict(images[0], max_detections=150)
    with pytest.raises(ValueError, match="unknown class"):
        exported.predict(images[0], classes=["zebra"])


BLOCK_TORCH = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def test_cli_predicts_with_onnx_without_torch(
    onnx_path: Path, model: YolactPP, images: list[np.ndarray], tmp_path: Path
) -> None:
    from PIL import Image

    image = tmp_path / "photo.png"
    Image.fromarray(images[0]).save(image)
    out = tmp_path / "out"
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import yolactpp
        from yolactpp.cli import main
        code = main(["predict", {str(image)!r}, "-m", {str(onnx_path)!r}, "-o", {str(out)!r},
                     "--score-threshold", "0", "--max-detections", "5", "-q"])
        assert "torch" not in sys.modules and "torchvision" not in sys.modules
        sys.exit(code)
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads((out / "photo.json").read_text())
    want = model.predict(image, score_threshold=0, max_detections=5).to_dict()
    assert [d["class_id"] for d in got["detections"]] == [d["class_id"] for d in want["detections"]]
    for g, w in zip(got["detections"], want["detections"]):
        np.testing.assert_allclose(g["box"], w["box"], atol=0.05)
        assert abs(g["score"] - w["score"]) < 1e-4
        assert g["mask"]["size"] == w["mask"]["size"]
    assert (out / "predictions.json").exists() and (out / "photo.png").exists()


def test_benchmark_times_exported_files_next_to_eager(
    onnx_path: Path, model: YolactPP, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from yolactpp.cli import main

    weights = model.save_pretrained(tmp_path / "weights")
    args = ["benchmark", "-m", str(weights), "--also", str(onnx_path), "--also", f"{weights}@bfloat16"]
    assert main([*args, "--threads", "1", "--image-size", "80x60", "--warmup", "0", "--reps", "2"]) == 0
    header, *rows = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:2] == ["model", "runtime"] and header.endswith("x vs row 1")
    cells = [row.split() for row in rows]
    assert [(c[1], c[3]) for c in cells] == [("torch", "float32"), ("onnxruntime", "float32"), ("torch", "bfloat16")]
    assert float(cells[0][-1]) == 1.0 and all(float(c[-1]) > 0 for c in cells)
    assert main(["benchmark", "-m", str(weights), "--also", f"{weights}@bf16"]) == 2
    assert "unknown dtype 'bf16'" in capsys.readouterr().err


def test_foreign_and_tampered_files_name_the_problem(onnx_path: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07not a protobuf at all" * 10)
    with pytest.raises(ExportFormatError, match="not a loadable ONNX model"):
        load_exported(garbage)

    foreign = tmp_path / "foreign.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 19)]), str(foreign))
    with pytest.raises(ExportFormatError, match="not a yolactpp export"):
        load_exported(foreign)

    proto = onnx.load(str(onnx_path))
    for entry in proto.metadata_props:
        if entry.key == "yolactpp.config":
            entry.value = entry.value.replace('"class_names"', '"klass_names"')
    tampered = tmp_path / "tampered.onnx"
    onnx.save(proto, str(tampered))
    with pytest.raises(ExportFormatError, match="damaged yolactpp metadata"):
        load_exported(tampered)

    fake_package = tmp_path / "fake.pt2"
    with zipfile.ZipFile(fake_package, "w") as archive:
        archive.writestr("archive/data.txt", "not a package")
    with pytest.raises(ExportFormatError, match="not a loadable AOTInductor package"):
        load_exported(fake_package)

    from yolactpp.cli import main

    assert main(["predict", str(onnx_path), "-m", str(garbage)]) == 2


def test_export_names_an_op_onnx_cannot_express(tmp_path: Path) -> None:
    from yolactpp.export.onnx_export import to_onnx

    @torch.library.custom_op("yolactpp_export_test::mystery", mutates_args=())
    def mystery(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @mystery.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    class Uses(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return mystery(x) + 1

    program = torch.export.export(Uses(), (torch.zeros(2),))
    with pytest.raises(ExportError, match=r"yolactpp_export_test.mystery"):
        to_onnx(program, tmp_path / "m.onnx", 22, ["x"], ["y"])
