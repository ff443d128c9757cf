"""An export is done only once it has run: the new file is loaded and run in a child process on a
fixed input and compared with the eager model before it takes its name.

The pt2 path is compiled for real once (the small YOLACT++-shaped model of test_export.py, on
this machine's CPU: AVX-512 on the AMD EPYC Zen 4 this was written on, where full-size packages
were seen to crash with ``double free or corruption``). The crash itself is simulated with a
child process that aborts, for both outcomes: recompiled with AVX2 code and passing, or failing
with an :class:`ExportError` that says what happened and leaves no file behind.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from tests.test_export import small_model
from yolactpp.export import ExportError, load_exported, verify
from yolactpp.export import pt2 as pt2_module
from yolactpp.export._trace import trace_model
from yolactpp.export.pt2 import SAFE_CPU_CODEGEN, RecompiledWarning, export_pt2

ABORT = [sys.executable, "-c", "import os, sys; sys.stderr.write('double free or corruption (!prev)\\n'); os.abort()"]


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def traced(model):
    """The model traced once for every pt2 test here (tracing is most of an export's cost)."""
    return trace_model(model, "float32", None, None, use_topk=False)


@pytest.fixture(scope="module")
def package(model, traced, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real AOTInductor compile of the small model for this CPU, checked by a child process."""
    path = tmp_path_factory.mktemp("pt2") / "small.pt2"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pt2_module, "trace_model", lambda *args, **kwargs: traced)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecompiledWarning)  # the first compile must pass here
            assert export_pt2(model, path) == path
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_pt2_package_runs_and_matches_eager(package: Path, model) -> None:
    assert _files(package.parent) == ["small.pt2"], "no staging file left beside the package"
    exported = load_exported(package, threads=2)  # safe in this process: a child ran it first
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    eager, got = model.predict(image), exported.predict(image)
    assert len(got) == len(eager) > 0
    np.testing.assert_array_equal(got.labels, eager.labels.numpy())
    np.testing.assert_allclose(got.scores, eager.scores.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(got.boxes, eager.boxes.numpy(), atol=0.05, rtol=0)


class _FakeCompiler:
    """Stands in for AOTInductor: 'compiles' by copying the real package, and records the settings."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.configs: list[dict[str, Any]] = []

    def __call__(self, program: Any, package_path: str, inductor_configs: dict[str, Any]) -> str:
        self.configs.append({k: v for k, v in inductor_configs.items() if k != "aot_inductor.metadata"})
        Path(package_path).write_bytes(self.package.read_bytes())
        return package_path


@pytest.fixture
def fake_compile(package: Path, traced, monkeypatch: pytest.MonkeyPatch) -> _FakeCompiler:
    compiler = _FakeCompiler(package)
    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", compiler)
    monkeypatch.setattr(pt2_module, "trace_model", lambda *args, **kwargs: traced)
    return compiler


def test_a_package_that_crashes_is_recompiled_with_avx2_code(
    model, fake_compile: _FakeCompiler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = verify._child_command
    calls = []

    def first_crashes(path: Path, feeds: Path, result: Path) -> list[str]:
        calls.append(path)
        return ABORT if len(calls) == 1 else real(path, feeds, result)

    monkeypatch.setattr(verify, "_child_command", first_crashes)
    target = tmp_path / "model.pt2"
    with pytest.warns(RecompiledWarning, match=r"failed its check run \(the process loading it was killed by SIGABRT"):
        assert export_pt2(model, target) == target
    assert fake_compile.configs == [{}, SAFE_CPU_CODEGEN] and SAFE_CPU_CODEGEN == {"cpp.simdlen": 256}
    assert len(calls) == 2 and _files(tmp_path) == ["model.pt2"]
    assert load_exported(target).info.format == "pt2"


def test_a_package_that_keeps_crashing_is_not_written(
    model, fake_compile: _FakeCompiler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verify, "_child_command", lambda *args: ABORT)
    target = tmp_path / "model.pt2"
    target.write_bytes(b"the previous package")
    with pytest.raises(ExportError) as info:
        export_pt2(model, target, overwrite=True)
    message = str(info.value)
    assert "killed by SIGABRT (double free or corruption (!prev))" in message
    assert "compiled again with AVX2 code" in message and "Nothing was written" in message
    assert "format='onnx'" in message  # what to do instead
    assert target.read_bytes() == b"the previous package" and _files(tmp_path) == ["model.pt2"]


def test_a_package_that_differs_from_eager_is_named(
    model, fake_compile: _FakeCompiler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def miscompiled(path: Path, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str | None:
        return verify.compare_outputs(expected, {**expected, "scores": expected["scores"] + 0.25})

    monkeypatch.setattr(pt2_module, "_check_run", miscompiled)
    with pytest.raises(ExportError, match=r"scores of image 0 differ from the eager model's by up to 0\.25"):
        export_pt2(model, tmp_path / "model.pt2")
    assert _files(tmp_path) == []


def test_onnx_check_names_a_crash(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ONNX exporter runs the same check (its success path: every test_export.py export)."""
    from yolactpp.export.onnx_export import check_exported

    monkeypatch.setattr(verify, "_child_command", lambda *args: ABORT)
    staged = tmp_path / "m.onnx"
    staged.write_bytes(b"x")
    with pytest.raises(ExportError, match=r"does not run correctly on onnxruntime: the process loading it was killed by SIGABRT"):
        check_exported(staged, model.config, 200, None)


def test_probe_result_and_comparison_words() -> None:
    assert verify.ProbeResult(None, -11, "").crash == "the process loading it was killed by SIGSEGV"
    assert verify.ProbeResult(None, 3, "Traceback\nValueError: bad\n").crash == (
        "the process loading it exited with status 3 (ValueError: bad)"
    )
    base = {
        "count": np.array([3]),
        "scores": np.array([[0.9, 0.8, 0.8]]),
        "box_scores": np.array([[0.9, 0.8, 0.8]]),
        "labels": np.array([[0, 1, 2]]),
        "boxes": np.array([[[0, 0, 1, 1], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]]], dtype=float),
    }
    swapped = {**base, "labels": base["labels"][:, [0, 2, 1]], "boxes": base["boxes"][:, [0, 2, 1]]}
    assert verify.compare_outputs(base, swapped) is None  # tied scores in another order
    assert "only 1 of the 3" in (verify.compare_outputs(base, {**base, "labels": np.array([[0, 2, 0]])}) or "")
    assert "NaN" in (verify.compare_outputs(base, {**base, "boxes": base["boxes"] * np.nan}) or "")
    assert "missing" in (verify.compare_outputs(base, {"count": base["count"]}) or "")
