"""``yolactpp build-ops``: what it reports and how it fails, without compiling (a real build is slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolactpp.cli import main
from yolactpp.ops import _library, _loader


@pytest.fixture
def nothing_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a fresh `yolactpp build-ops` process (this one has the ops loaded)."""
    fresh = {"tried": False, "loaded": False, "reason": "", "logged": False, "warned": False, "path": None}
    monkeypatch.setattr(_loader, "_state", fresh)


def test_check_reports_the_loaded_kernels(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build-ops", "--check"]) == 0
    out = capsys.readouterr().out
    assert f"torch {torch.__version__}" in out
    assert "deform_conv2d  cpu   native-cpu" in out and "fast_nms       cpu   native-cpu" in out
    assert out.rstrip().endswith("yolactpp build-ops: native ops loaded")


def test_no_build_once_the_ops_are_loaded(capsys: pytest.CaptureFixture[str]) -> None:
    """A second library defining the same ops would abort the process: refused."""
    assert main(["build-ops"]) == 1
    assert "the native ops are already loaded in this process" in capsys.readouterr().err


@pytest.mark.usefixtures("nothing_loaded")
def test_no_compiler_exits_1_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert main(["build-ops"]) == 1
    err = capsys.readouterr().err
    assert "native ops NOT built: no C++ compiler found (CXX=/nonexistent/c++)" in err


@pytest.mark.usefixtures("nothing_loaded")
def test_the_build_compiles_the_cpu_sources_into_this_torchs_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """cpp_extension.load gets the folder-chosen sources, the build record and the cache folder; failure: exit 1."""
    from torch.utils import cpp_extension

    calls: list[dict] = []

    def load(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("Error building extension 'yolactpp_ops'")

    monkeypatch.setenv(_library.CACHE_ENV, str(tmp_path))
    monkeypatch.setenv("YOLACTPP_BUILD_CUDA", "0")
    monkeypatch.setattr(cpp_extension, "load", load)
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    assert main(["build-ops", "--force"]) == 1
    (kwargs,) = calls
    assert kwargs["build_directory"] == str(_library.build_dir()) and Path(kwargs["build_directory"]).is_dir()
    assert kwargs["name"] == "yolactpp_ops" and kwargs["is_python_module"] is False and kwargs["with_cuda"] is False
    assert any(s.endswith("_ops/module.cpp") for s in kwargs["sources"]) and not any(
        "/cuda/" in s for s in kwargs["sources"]
    )
    assert f"-DYOLACTPP_BUILD_TORCH={torch.__version__}" in kwargs["extra_cflags"]
    captured = capsys.readouterr()
    assert "building native ops: CPU kernels only (YOLACTPP_BUILD_CUDA=0)" in captured.out
    assert (
        "the build failed (RuntimeError: Error building extension 'yolactpp_ops'); rerun with --verbose" in captured.err
    )
