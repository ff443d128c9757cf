"""Outputs never replace what the user gave, and replace earlier outputs only when asked.

``yolactpp predict`` refuses (one line, exit 2, before the model loads) an output that is an
input file (an image, a video), an ``--output`` that is a file, and result files that exist
without ``--overwrite``; per-image files never take the names of the combined results files.
``export`` and ``quantize`` check their destination before the slow work, write beside it
first and rename only a finished file.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from yolactpp.cli import main
from yolactpp.outputs import OutputExistsError, OutputPathError, check_output_file, staged_file


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refusal here must come before the model is loaded."""

    def fail(args):
        raise AssertionError("the model was loaded before the outputs were checked")

    monkeypatch.setattr("yolactpp.cli.predict.load_model", fail)


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_predict_never_replaces_an_input_image_or_video(tmp_path: Path, square_path: Path, no_model, capsys) -> None:
    photo = tmp_path / "orig.png"
    shutil.copy(square_path, photo)
    before = photo.read_bytes()
    assert main(["predict", str(photo), "-m", "w.pth", "-o", str(tmp_path)]) == 2
    (line,) = _err(capsys)
    assert line.startswith("yolactpp predict: error: ") and "would replace the input" in line and "orig.png" in line
    assert photo.read_bytes() == before
    assert main(["predict", str(photo), "-m", "w.pth", "-o", str(tmp_path), "--overwrite"]) == 2  # inputs: never
    assert "would replace the input" in _err(capsys)[0]

    pytest.importorskip("av")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not decoded: refused before reading")
    assert main(["predict", str(clip), "-m", "w.pth", "-o", str(tmp_path)]) == 2
    assert "clip.mp4 would replace the input" in _err(capsys)[0]
    # a folder of inputs predicted into itself (its annotated copies would replace the inputs)
    assert main(["predict", str(tmp_path), "-m", "w.pth", "-o", str(tmp_path)]) == 2
    assert "would replace the input" in _err(capsys)[0]
    assert photo.read_bytes() == before


def test_predict_output_that_is_a_file_or_exists(tmp_path: Path, square_path: Path, no_model, capsys) -> None:
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert main(["predict", str(square_path), "-m", "w.pth", "-o", str(target)]) == 2
    assert _err(capsys) == [f"yolactpp predict: error: --output {target} is a file; give a folder for the results"]
    assert main(["predict", str(square_path), "-m", "w.pth", "-o", str(target / "sub")]) == 2
    assert "is a file" in _err(capsys)[0]

    out = tmp_path / "out"
    out.mkdir()
    (out / f"{square_path.stem}.json").write_text("earlier run")
    assert main(["predict", str(square_path), "-m", "w.pth", "-o", str(out), "--no-plot"]) == 2
    (line,) = _err(capsys)
    assert "exists already; pass --overwrite to replace" in line
    assert (out / f"{square_path.stem}.json").read_text() == "earlier run"


def test_per_image_results_never_collide_with_combined_files(
    tmp_path: Path, square_path: Path, v1_model, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr("yolactpp.cli.predict.load_model", lambda args: v1_model)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(square_path, folder / "predictions.png")
    out = tmp_path / "out"
    args = ["predict", str(folder), "-m", "w.pth", "-o", str(out), "--no-plot", "-q", "--score-threshold", "0.3"]
    assert main(args) == 0
    per_image = json.loads((out / "predictions_2.json").read_text())
    assert per_image["path"].endswith("predictions.png") and per_image["detections"]
    assert isinstance(json.loads((out / "predictions.json").read_text()), list)  # the combined COCO records
    assert main(args) == 2 and "--overwrite" in _err(capsys)[0]  # a second run asks first


def test_check_output_file_refusals(tmp_path: Path) -> None:
    weights = tmp_path / "yolact_resnet50_54_800000.pth"
    weights.write_bytes(b"checkpoint")
    with pytest.raises(OutputPathError, match=r"must end in \.onnx, got 'yolact_resnet50_54_800000.pth'"):
        check_output_file(weights, suffix=".onnx")
    with pytest.raises(OutputPathError, match="is an input file"):
        check_output_file(weights, inputs=[weights], overwrite=True)
    with pytest.raises(OutputPathError, match="is a folder"):
        check_output_file(tmp_path / ".", suffix=None)
    with pytest.raises(OutputPathError, match="it is a file, not a folder"):
        check_output_file(weights / "model.onnx", suffix=".onnx")
    with pytest.raises(OutputPathError, match="cannot write"):
        check_output_file("/proc/yolactpp-test/model.onnx", suffix=".onnx")
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        check_output_file(existing, suffix=".onnx")
    assert check_output_file(existing, suffix=".onnx", overwrite=True) == existing
    assert weights.read_bytes() == b"checkpoint" and existing.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing.name, weights.name]  # no probe files left


def test_staged_file_replaces_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), staged_file(target) as staging:
        assert staging.parent == tmp_path and staging.suffix == ".onnx" and staging != target
        staging.write_bytes(b"half")
        raise RuntimeError("failed midway")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    with staged_file(target) as staging:
        staging.write_bytes(b"new")
    assert target.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_export_and_quantize_check_the_destination_first(tmp_path: Path, v1_checkpoint: Path, capsys) -> None:
    """Each refusal returns in well under a second: nothing is traced or compiled first."""
    from yolactpp.model import YolactPP

    model = YolactPP.__new__(YolactPP)  # never used: the destination is refused before the model is touched
    weights = tmp_path / "yolact_resnet50_54_800000.pth"
    weights.write_bytes(b"the user's checkpoint")
    from yolactpp.export import export_onnx, export_pt2

    with pytest.raises(OutputPathError, match=r"must end in \.onnx"):
        export_onnx(model, weights)
    (tmp_path / "dir.onnx").mkdir()
    with pytest.raises(OutputPathError, match="is a folder"):
        export_onnx(model, tmp_path / "dir.onnx")
    with pytest.raises(OutputPathError, match="not a folder"):
        export_pt2(model, weights / "m.pt2")
    (tmp_path / "old.pt2").write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        export_pt2(model, tmp_path / "old.pt2")
    assert weights.read_bytes() == b"the user's checkpoint"

    ckpt = str(v1_checkpoint)
    for argv, message in [
        (["export", "-m", ckpt, "-o", str(tmp_path / "dir.onnx")], "is a folder"),
        (["export", "-m", ckpt, "-o", str(tmp_path / "old.pt2"), "--format", "pt2"], "exists; pass overwrite=True"),
        (["export", "-m", ckpt, "-o", str(weights)], "must end in .onnx"),
        (["quantize", "-m", ckpt, "-o", str(tmp_path / "dir.onnx")], "is a folder"),
        (["quantize", "-m", str(tmp_path / "dir.onnx"), "-o", str(tmp_path / "dir.onnx")], "is an input file"),
    ]:
        assert main(argv) == 2, argv
        (line,) = _err(capsys)
        assert line.startswith(f"yolactpp {argv[0]}: error: ") and message in line, line


def test_quantize_reads_calibration_first_and_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from yolactpp.quantize import CalibrationError, quantize_model
    from yolactpp.quantize.calibration import SkippedCalibrationImageWarning, read_calibration_images

    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.warns(SkippedCalibrationImageWarning, match="truncated.png"):
        arrays = read_calibration_images([truncated, good])
    assert len(arrays) == 1 and arrays[0].shape == (40, 50, 3)
    with pytest.raises(CalibrationError, match="none of the 1 calibration image"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_calibration_images([truncated])

    # a failed quantization leaves no temporary folder behind, and none of the output
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch))

    def exported(model, path, **kwargs):
        Path(path).write_bytes(b"float32 model")
        return Path(path)

    def failing_quantize(*args, **kwargs):
        raise RuntimeError("quantization failed")

    monkeypatch.setattr("yolactpp.export.onnx_export.write_onnx", exported)
    monkeypatch.setattr("yolactpp.export.load_exported", lambda *a, **k: SimpleNamespace())
    monkeypatch.setattr("yolactpp.quantize.onnx_int8.quantize_onnx", failing_quantize)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in (None, tmp_path / "q.onnx"):
            with pytest.raises(RuntimeError, match="quantization failed"):
                quantize_model(SimpleNamespace(config=SimpleNamespace(name="m")), [good], path=path)  # type: ignore[arg-type]
    assert list(scratch.glob("yolactpp-*")) == [] and not (tmp_path / "q.onnx").exists()
