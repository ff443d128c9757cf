"""What a newcomer meets: a missing optional extra is named with the pip command that installs it
(before any work starts), and CLI warnings are printed above the progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from yolactpp import YolactPP, get_model_config
from yolactpp.cli import main
from yolactpp.errors import MissingDependencyError, require_extra


@pytest.fixture(scope="module")
def model() -> YolactPP:
    return YolactPP(get_model_config("yolact_resnet50"))  # random weights: nothing runs past the check


def test_require_extra_names_every_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # what `import onnx` sees when it is not installed
    with pytest.raises(MissingDependencyError, match=r"^exporting needs onnx, nothing_like_this_module, which are not"):
        require_extra(("numpy", "onnx", "nothing_like_this_module"), "onnx", "exporting")
    require_extra(("numpy", "json"), "onnx", "exporting")  # all there: no error


def test_export_without_the_onnx_extra(model: YolactPP, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(MissingDependencyError, match=r"needs onnxscript, which is not installed: pip install 'yolactpp\[onnx\]'"):
        model.export(tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_quantize_without_the_int8_extra(model: YolactPP, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match=r"int8 quantization needs onnxruntime.*pip install 'yolactpp\[int8\]'"):
        model.quantize()


def test_cli_export_without_the_onnx_extra_is_one_line(
    v1_checkpoint: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", "-m", str(v1_checkpoint), "--format", "onnx", "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'yolactpp[onnx]'" in err


def test_cli_prints_warnings_above_the_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    import warnings

    from tqdm import tqdm

    from yolactpp.cli._common import warnings_above_progress_bars
    from yolactpp.errors import YolactppWarning, warn_caller

    written: list[str] = []
    monkeypatch.setattr(tqdm, "write", lambda text, file=None: written.append(text))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with warnings_above_progress_bars():
            warn_caller("a fallback kernel runs", YolactppWarning)
    assert len(written) == 1 and "YolactppWarning: a fallback kernel runs" in written[0]
    assert written[0].startswith(__file__)  # the caller's line
