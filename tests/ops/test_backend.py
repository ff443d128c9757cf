"""Backend selection and reporting: fallback really runs the fallback, no import-time loading."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision

import yolactpp
from yolactpp import ops
from yolactpp.ops import _loader

SRC = Path(yolactpp.__file__).resolve().parents[1]
fast_nms_module = importlib.import_module("yolactpp.ops.fast_nms")  # the module, not the function


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": env.pop("PYTHONPATH", str(SRC)), **env}
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=300)


def test_fallback_backend_runs_torchvision_not_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(0)
    x, weight = torch.randn(1, 4, 6, 6, generator=gen), torch.randn(3, 4, 3, 3, generator=gen)
    offset, mask = torch.randn(1, 18, 6, 6, generator=gen), torch.rand(1, 9, 6, 6, generator=gen)
    expected = torchvision.ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)

    def forbidden(*args):
        raise AssertionError("the native kernel ran under the fallback backend")

    monkeypatch.setattr(torch.ops.yolactpp, "deform_conv2d", forbidden)
    with ops.use_backend("fallback"):
        torch.testing.assert_close(ops.deform_conv2d(x, offset, weight, padding=1, mask=mask), expected)
    with pytest.raises(AssertionError, match="native kernel ran"):
        ops.deform_conv2d(x, offset, weight, padding=1, mask=mask)  # auto: the (patched) kernel


def test_fallback_backend_runs_the_reference_nms(monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.9]])
    scores = torch.tensor([[0.9, 0.8]])
    calls: list[str] = []
    real = fast_nms_module.fast_nms_reference
    monkeypatch.setattr(fast_nms_module, "fast_nms_reference", lambda *a: calls.append("reference") or real(*a))
    with ops.use_backend("fallback"):
        ops.fast_nms(boxes, scores)
    ops.fast_nms(boxes, scores)
    assert calls == ["reference"]


def test_backend_info_reports_native_and_fallback() -> None:
    infos = {(i.op, i.device): i for i in ops.backend_info()}
    assert set(infos) == {(op, d) for op in ("deform_conv2d", "fast_nms") for d in ("cpu", "cuda")}
    for op in ("deform_conv2d", "fast_nms"):
        assert infos[op, "cpu"].backend == "native-cpu"
        assert "_C" in infos[op, "cpu"].reason
    with ops.use_backend("fallback"):
        assert {i.backend for i in ops.backend_info()} == {"fallback"}
        assert all("backend set to 'fallback'" in i.reason for i in ops.backend_info())
    assert ops.get_backend() == "auto"


def test_invalid_backend_names() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, native, fallback"):
        ops.set_backend("gpu")  # type: ignore[arg-type]
    result = run_python("from yolactpp import ops; ops.get_backend()", YOLACTPP_OPS="fast")
    assert result.returncode != 0 and "YOLACTPP_OPS='fast' is not one of auto, native, fallback" in result.stderr


def test_env_variable_selects_the_fallback() -> None:
    code = "from yolactpp import ops; print(sorted({i.backend for i in ops.backend_info()}))"
    result = run_python(code, YOLACTPP_OPS="fallback")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['fallback']"


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, torch, yolactpp, yolactpp.ops\n"
        "from yolactpp.ops import _loader\n"
        "assert not _loader._state['tried'], 'the library was loaded at import'\n"
        "from pathlib import Path\n"
        "from yolactpp.ops import _library\n"
        # the package's own op libraries: yolactpp/_C*.so and the build cache (a clone in a folder named
        # 'yolactpp' holds torchvision's libraries under .../yolactpp/.venv, which are not ours)
        "ours = [Path(yolactpp.__file__).resolve().parent, _library.cache_root().resolve()]\n"
        "def is_ours(p):\n"
        "    path = Path(p).resolve()\n"
        "    return any(path.is_relative_to(root) for root in ours)\n"
        "assert not any(is_ours(p) for p in torch.ops.loaded_libraries), torch.ops.loaded_libraries\n"
        "assert 'yolactpp._C' not in sys.modules\n"
        "assert not torch.cuda.is_initialized()\n"
        "print('clean')\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "clean"


def test_without_the_extension_everything_falls_back(tmp_path: Path) -> None:
    """A package copy without _C*.so: backend_info explains, 'native' is refused, ops still work."""
    shutil.copytree(SRC / "yolactpp", tmp_path / "yolactpp", ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    code = (
        "import torch\n"
        "from yolactpp import ops\n"
        "infos = ops.backend_info()\n"
        "assert {i.backend for i in infos} == {'fallback'}, infos\n"
        "print(infos[0].reason)\n"
        "try:\n"
        "    ops.set_backend('native')\n"
        "except RuntimeError as exc:\n"
        "    print('refused:', exc)\n"
        "boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]]); scores = torch.tensor([[0.5]])\n"
        "print(ops.fast_nms(boxes, scores)[0].tolist())\n"
    )
    result = run_python(code, PYTHONPATH=str(tmp_path), YOLACTPP_OPS_CACHE=str(tmp_path / "empty-cache"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "no compiled library was found: the package was installed without one" in lines[0]
    assert "NativeOpsFallbackWarning" in result.stderr and "run `yolactpp build-ops` once" in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "NativeOpsFallbackWarning" in line]
    assert line.startswith("<string>:11: ")  # attributed to the user's call (the fast_nms line), not a library line
    assert lines[1].startswith("refused: the native yolactpp ops are not available")
    assert lines[2] == "[0]"


def test_native_backend_is_accepted_when_built() -> None:
    with ops.use_backend("native"):
        assert ops.get_backend() == "native"
        assert _loader.use_native("fast_nms", torch.device("cpu"))
