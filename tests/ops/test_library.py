"""Finding a compiled library for this torch: build record, cache folder, mismatch -> fallback + one warning."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import torchvision

from yolactpp import ops
from yolactpp.ops import _library, _loader


def fake_library(path: Path, record: str | None) -> Path:
    """A file standing in for a compiled library, with the record a build would compile in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"\x7fELF" + b"\0" * 64
    if record is not None:
        body += b"yolactpp-build-record:" + record.encode() + b"\0" + b"\0" * 64
    path.write_bytes(body)
    return path


def test_the_loaded_library_records_this_torch() -> None:
    assert ops.backend_info()  # loads it
    path = _loader._state["path"]
    record = _library.read_build_record(path)  # type: ignore[arg-type]
    assert record is not None and record["torch"] == torch.__version__
    assert _library.mismatch(path) is None  # type: ignore[arg-type]


def test_mismatches_are_named(tmp_path: Path) -> None:
    other = fake_library(tmp_path / "a.so", "torch=1.13.0+cpu;cuda=none;")
    assert _library.mismatch(other) == f"it was built for torch 1.13.0+cpu, this is torch {torch.__version__}"
    cuda = fake_library(tmp_path / "b.so", f"torch={torch.__version__};cuda=9.9;")
    assert "built for CUDA 9.9" in str(_library.mismatch(cuda))
    assert "no build record" in str(_library.mismatch(fake_library(tmp_path / "c.so", None)))


def test_cache_folder_is_per_torch_version_and_preferred(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_library.CACHE_ENV, str(tmp_path))
    folder = _library.build_dir()
    assert folder.parent == tmp_path and torch.__version__ in folder.name
    assert [c.origin for c in _library.candidates()] == ["package"]
    fake_library(folder / "yolactpp_ops.so", f"torch={torch.__version__};cuda=none;")
    assert [c.origin for c in _library.candidates()] == ["package"]  # no "complete" marker: a build in progress
    (folder / _library.COMPLETE_MARKER).write_text("")
    assert [c.origin for c in _library.candidates()] == ["build cache", "package"]


def test_default_cache_root_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_library.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _library.cache_root() == tmp_path / "yolactpp" / "ops"


@pytest.fixture
def mismatched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The loader sees only a library built for another torch (as a wheel installed next to a newer torch)."""
    library = fake_library(tmp_path / "_C.abi3.so", "torch=2.0.0+cu118;cuda=11.8;")
    monkeypatch.setattr(_library, "candidates", lambda: [_library.Candidate(library, "package")])
    monkeypatch.setattr(
        _loader,
        "_state",
        {"tried": False, "loaded": False, "reason": "", "logged": False, "warned": False, "path": None},
    )
    monkeypatch.delenv(_loader.ENV_WARN, raising=False)
    return library


def dcn_case() -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(3)
    return (
        torch.randn(1, 4, 6, 6, generator=gen),
        torch.randn(1, 18, 6, 6, generator=gen),
        torch.randn(3, 4, 3, 3, generator=gen),
    )


def test_torch_mismatch_falls_back_with_one_warning_naming_the_fix(mismatched: Path) -> None:
    x, offset, weight = dcn_case()
    with pytest.warns(ops.NativeOpsFallbackWarning) as caught:
        out = ops.deform_conv2d(x, offset, weight, padding=1)
    (warning,) = caught
    assert warning.filename == __file__  # the caller's line, not the loader's
    text = str(warning.message)
    assert "built for torch 2.0.0+cu118" in text and "`yolactpp build-ops`" in text and "YOLACTPP_OPS_WARN=0" in text
    assert issubclass(ops.NativeOpsFallbackWarning, UserWarning)
    torch.testing.assert_close(out, torchvision.ops.deform_conv2d(x, offset, weight, padding=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ops.deform_conv2d(x, offset, weight, padding=1)  # once per process
        ops.fast_nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.5]]))
    infos = {(i.op, i.device): i for i in ops.backend_info()}
    assert infos["deform_conv2d", "cpu"].backend == "fallback"
    assert "built for torch 2.0.0+cu118" in infos["deform_conv2d", "cpu"].reason


def test_warning_switch_and_explicit_fallback_stay_quiet(mismatched: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, offset, weight = dcn_case()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ops.use_backend("fallback"):
            ops.deform_conv2d(x, offset, weight, padding=1)
        monkeypatch.setenv(_loader.ENV_WARN, "0")
        ops.deform_conv2d(x, offset, weight, padding=1)
