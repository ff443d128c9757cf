"""``yolactpp train`` end to end on a tiny run, its output-folder guard and its bad-data message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yolactpp import YolactPP
from yolactpp.cli import main


def _train(capsys, model_dir: Path, train, val, out: Path, *extra: str) -> tuple[int, str, str]:
    argv = [
        "train", "-m", str(model_dir), "--train", str(train.annotations), "--images", str(train.images),
        "--iterations", "2", "--batch-size", "2", "--workers", "0", "-o", str(out), "-q", *extra,
    ]  # fmt: skip
    if val is not None:
        argv += ["--val-annotations", str(val.annotations), "--val-images", str(val.images)]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def start_dir(tmp_path: Path, tiny_model: YolactPP) -> Path:
    return tiny_model.save_pretrained(tmp_path / "start")


def test_train_end_to_end_then_refuses_to_overwrite(tmp_path: Path, start_dir: Path, small_shapes, capsys) -> None:
    train, val = small_shapes
    out = tmp_path / "runs" / "shapes"
    code, stdout, _ = _train(capsys, start_dir, train, val, out)
    assert code == 0
    assert f"trained 2 iterations: model in {out / 'model'}" in stdout
    assert "mask" in stdout and "AP50" in stdout  # the validation table
    model = YolactPP.from_pretrained(out / "model")
    assert model.class_names == ("circle", "rectangle", "triangle") and model.config.category_ids == (3, 7, 9)
    assert len(json.loads((out / "run.json").read_text())["reinitialised"]) == 2  # 2 -> 3 classes: conf layer

    code, _, stderr = _train(capsys, start_dir, train, None, out)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yolactpp train: error: output folder")
    assert "--overwrite" in lines[0]
    code, _, _ = _train(capsys, start_dir, train, None, out, "--overwrite")
    assert code == 0


def test_bad_annotations_are_one_line_exit_2(tmp_path: Path, start_dir: Path, small_shapes, capsys) -> None:
    train, _ = small_shapes
    data = json.loads(train.annotations.read_text())
    data["annotations"][1]["category_id"] = 99
    bad_id = data["annotations"][1]["id"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    broken_split = type(train)(broken, train.images, train.num_images, train.num_objects, train.num_crowds)
    code, _, stderr = _train(capsys, start_dir, broken_split, None, tmp_path / "out")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yolactpp train: error: ")
    assert "broken.json" in lines[0] and str(bad_id) in lines[0] and "99" in lines[0]
    assert not (tmp_path / "out").exists()  # bad data fails before the run folder is made


def test_val_arguments_go_together(tmp_path: Path, start_dir: Path, small_shapes, capsys) -> None:
    train, val = small_shapes
    code, _, stderr = _train(capsys, start_dir, train, None, tmp_path / "out", "--val-images", str(val.images))
    assert code == 2 and "--val-annotations and --val-images go together" in stderr
