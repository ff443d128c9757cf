"""Installation survives every way the native build can fail, and says why in one line.

Each case builds a temporary copy of the project (setup.py, pyproject.toml, src/) in a
subprocess; none of them compiles anything, so they stay quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_BUILT = "yolactpp: native ops NOT built: "
FALLBACK = "installing the pure-Python package (ops fall back to torchvision / PyTorch)"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project without build outputs or compiled libraries."""
    root = tmp_path_factory.mktemp("project")
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "src", root / "src", ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    return root


def build(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run a build command in the project copy; environment switches unset unless given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("YOLACTPP_BUILD_")}
    return subprocess.run(
        args, cwd=project, env={**clean, **env}, capture_output=True, text=True, timeout=600
    )


def shared_libraries(project: Path) -> list[Path]:
    return list((project / "src" / "yolactpp").glob("_C*.so"))


def test_switches_are_printed_and_build_ops_0_skips(project: Path) -> None:
    result = build(project, sys.executable, "setup.py", "build_ext", "--inplace", YOLACTPP_BUILD_OPS="0")
    assert result.returncode == 0, result.stderr
    assert "yolactpp: build switches: YOLACTPP_BUILD_OPS=0, YOLACTPP_BUILD_CUDA=(unset: when nvcc is found)" in result.stdout
    assert f"{NOT_BUILT}YOLACTPP_BUILD_OPS=0; {FALLBACK}" in result.stdout
    assert shared_libraries(project) == []


def test_missing_compiler(project: Path) -> None:
    result = build(project, sys.executable, "setup.py", "build_ext", "--inplace", CXX="/nonexistent/c++")
    assert result.returncode == 0, result.stderr
    assert f"{NOT_BUILT}no C++ compiler found (CXX=/nonexistent/c++); {FALLBACK}" in result.stdout
    assert shared_libraries(project) == []


def test_broken_compiler_build_failure_is_not_fatal(project: Path) -> None:
    """A compiler that exists but fails: the build really starts, breaks, and is turned into a note."""
    result = build(project, sys.executable, "setup.py", "build_ext", "--inplace", CXX="false",
                   YOLACTPP_BUILD_CUDA="0", MAX_JOBS="1")
    assert result.returncode == 0, result.stderr
    assert "yolactpp: building native ops: CPU kernels only (YOLACTPP_BUILD_CUDA=0)" in result.stdout
    assert f"{NOT_BUILT}the build failed (" in result.stdout and FALLBACK in result.stdout
    assert shared_libraries(project) == []


def test_torch_not_importable(project: Path, tmp_path: Path) -> None:
    """As in an isolated build environment without torch."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('no torch here')\n")
    result = build(project, sys.executable, "setup.py", "build_ext", "--inplace", PYTHONPATH=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"{NOT_BUILT}torch is not importable at build time (ImportError: no torch here)" in result.stdout


def test_strict_makes_failure_fatal(project: Path) -> None:
    result = build(project, sys.executable, "setup.py", "build_ext", "--inplace", CXX="/nonexistent/c++",
                   YOLACTPP_BUILD_STRICT="1")
    assert result.returncode != 0
    assert "YOLACTPP_BUILD_STRICT=1 and the native ops cannot be built: no C++ compiler found" in result.stderr


def test_pip_wheel_without_compiler_is_pure_python(project: Path, tmp_path: Path) -> None:
    """The real installer path: pip builds a pure-Python wheel and shows the reason with -v."""
    result = build(project, sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                   "--wheel-dir", str(tmp_path), ".", CXX="/nonexistent/c++")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{NOT_BUILT}no C++ compiler found (CXX=/nonexistent/c++)" in result.stdout + result.stderr
    (wheel,) = tmp_path.glob("yolactpp-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "yolactpp/ops/deform_conv.py" in names and not any(n.endswith(".so") for n in names)
