"""``yolactpp predict`` over many inputs survives bad ones: each is reported, the rest are written,
and the exit code says whether the run failed (nothing readable, or any failure with --strict).

The model is the session's (``load_model`` is replaced) so that each run costs one forward pass.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_inputs import _png_header_only
from yolactpp.cli import main


@pytest.fixture
def inputs(tmp_path: Path, square_path: Path) -> dict[str, Path]:
    good = tmp_path / "in" / "good.png"
    good.parent.mkdir()
    shutil.copy(square_path, good)
    corrupt = good.with_name("corrupt.png")
    corrupt.write_bytes(good.read_bytes()[:300])  # a truncated download
    bomb = good.with_name("bomb.png")
    bomb.write_bytes(_png_header_only(30000, 30000))
    return {"good": good, "corrupt": corrupt, "bomb": bomb, "out": tmp_path / "out"}


@pytest.fixture(autouse=True)
def shared_model(v1_model, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("yolactpp.cli.predict.load_model", lambda args: v1_model)


def _run(capsys, *argv: Any) -> tuple[int, str, list[str]]:
    code = main(["predict", *map(str, argv), "-m", "weights.pth", "--no-plot", "--score-threshold", "0.3"])
    captured = capsys.readouterr()
    messages = [line for line in captured.err.splitlines() if line.startswith("yolactpp")]  # not the progress bar
    return code, captured.out, messages


def test_a_bad_file_is_reported_and_the_others_written(inputs: dict[str, Path], capsys) -> None:
    code, out, err = _run(capsys, inputs["corrupt"], inputs["good"], inputs["bomb"], "-o", inputs["out"])
    assert code == 0
    assert len(err) == 2 and all(line.startswith("yolactpp predict: skipped ") for line in err)
    assert f"cannot read {inputs['corrupt']} as an image" in err[0]
    assert f"{inputs['bomb']} is too large to open safely: 900,000,000 pixels" in err[1]
    assert "3 images (2 could not be read) done" in out
    records = json.loads((inputs["out"] / "predictions.json").read_text())
    assert records and {r["image_id"] for r in records} == {2}  # position 2: the good image
    assert sorted(p.name for p in inputs["out"].iterdir()) == ["good.json", "predictions.json"]


def test_strict_fails_the_run_after_writing_everything(inputs: dict[str, Path], capsys) -> None:
    code, _, err = _run(capsys, inputs["good"], inputs["corrupt"], "--strict", "-o", inputs["out"])
    assert code == 2
    assert err[-1] == "yolactpp predict: error: 1 of 2 inputs could not be read (--strict)"
    assert (inputs["out"] / "good.json").exists() and json.loads((inputs["out"] / "predictions.json").read_text())


def test_nothing_readable_fails(inputs: dict[str, Path], capsys) -> None:
    code, _, err = _run(capsys, inputs["corrupt"], inputs["bomb"], "-q", "-o", inputs["out"])
    assert code == 2 and err[-1] == "yolactpp predict: error: none of the 2 inputs could be read"
    assert json.loads((inputs["out"] / "predictions.json").read_text()) == []
    code, out, err = _run(capsys, inputs["bomb"], "-o", inputs["out"] / "again")  # one input: its own error
    assert code == 2 and out == "" and len(err) == 1
    assert err[0].startswith(f"yolactpp predict: error: {inputs['bomb']} is too large to open safely")


def test_ctrl_c_still_writes_predictions_json(inputs: dict[str, Path], capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted_after_one(stream: Iterator[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
        yield next(stream)
        raise KeyboardInterrupt

    monkeypatch.setattr("yolactpp.cli._predict_images.progress", interrupted_after_one)
    second = inputs["good"].with_name("second.png")
    shutil.copy(inputs["good"], second)
    code, _, err = _run(capsys, inputs["good"], second, "-o", inputs["out"])
    assert code == 130
    assert err == [
        f"yolactpp predict: interrupted after 1 of 2 images; {inputs['out'] / 'predictions.json'} holds the "
        "finished ones",
        "yolactpp: interrupted",
    ]
    records = json.loads((inputs["out"] / "predictions.json").read_text())
    assert records and {r["image_id"] for r in records} == {1}
