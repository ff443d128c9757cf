"""One error family: every error yolactpp raises on purpose is a ``YolactppError`` (keeping its
builtin base), and the CLI turns only those (and missing files) into one line with exit code 2."""

from __future__ import annotations

import ast
import builtins
import functools
import importlib
import importlib.util
from pathlib import Path

import pytest

import yolactpp
from yolactpp import YolactppError, YolactppWarning
from yolactpp.cli import main

SOURCE = Path(yolactpp.__file__).resolve().parent
#: Builtin exceptions the library may raise directly: protocol errors Python itself expects.
_ALLOWED_BUILTINS = {"NotImplementedError", "AttributeError", "AssertionError", "SystemExit", "StopIteration"}
#: Files exempt from the rule, with the reason.
_EXEMPT = {
    Path("ops/_build_config.py"): "setup.py loads it by path, before yolactpp is importable",
    Path("ops/_fake.py"): "the meta kernel raises what the C++ kernel raises (torch's RuntimeError)",
}


@functools.cache
def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text())


def _builtin_raises(path: Path) -> list[str]:
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
            name = node.exc.func.id
            value = getattr(builtins, name, None)
            if isinstance(value, type) and issubclass(value, BaseException) and name not in _ALLOWED_BUILTINS:
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno}: raise {name}(...)")
    return found


def test_no_deliberate_error_is_a_bare_builtin() -> None:
    paths = [p for p in sorted(SOURCE.rglob("*.py")) if p.relative_to(SOURCE) not in _EXEMPT]
    offenders = [hit for path in paths for hit in _builtin_raises(path)]
    assert offenders == [], "raise a YolactppError subclass (yolactpp.errors) instead:\n" + "\n".join(offenders)


def _exception_classes() -> list[tuple[str, str]]:
    """(module, class) for every class in the sources that names an exception or warning base."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        module = ".".join(("yolactpp", *path.relative_to(SOURCE).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(base).rsplit(".", 1)[-1] for base in node.bases]
                if any(b.endswith(("Error", "Exception", "Warning")) for b in bases):
                    found.append((module, node.name))
    return found


def test_every_error_and_warning_class_joins_the_family() -> None:
    classes = _exception_classes()
    assert len(classes) >= 10  # the scan sees them
    strays = []
    for module, name in classes:
        if module.startswith("yolactpp.integrations.ray") and importlib.util.find_spec("ray") is None:
            continue
        value = getattr(importlib.import_module(module), name)
        family = YolactppWarning if issubclass(value, Warning) else YolactppError
        if not issubclass(value, family):
            strays.append(f"{module}.{name}")
    assert strays == []


def test_errors_keep_their_builtin_bases() -> None:
    from yolactpp.checkpoint import CheckpointError
    from yolactpp.cli._common import CliError
    from yolactpp.errors import InvalidArgumentError, MissingDependencyError, MissingFileError
    from yolactpp.preprocess import ImageTooLargeError, InvalidImageError
    from yolactpp.registry import UnknownModelError

    assert issubclass(CheckpointError, ValueError) and issubclass(InvalidImageError, ValueError)
    assert issubclass(ImageTooLargeError, InvalidImageError) and issubclass(UnknownModelError, KeyError)
    assert issubclass(InvalidArgumentError, ValueError) and issubclass(MissingFileError, FileNotFoundError)
    assert issubclass(MissingDependencyError, ImportError) and issubclass(CliError, YolactppError)


@pytest.mark.parametrize(
    "error, code",
    [
        (ValueError("a library bug"), None),  # not ours: traceback (exit 1), never disguised as a user mistake
        (RuntimeError("a torch failure"), None),
        (YolactppError("a deliberate error"), 2),
        (FileNotFoundError("no such file: x.png"), 2),
    ],
)
def test_cli_exit_2_only_for_deliberate_errors_and_missing_files(
    error: Exception, code: int | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"")

    def fail(args: object) -> None:
        raise error

    monkeypatch.setattr("yolactpp.cli.predict.load_model", fail)
    argv = ["predict", str(image), "-m", "weights.pth"]
    if code is None:
        with pytest.raises(type(error), match=str(error)):
            main(argv)
    else:
        assert main(argv) == code
        assert capsys.readouterr().err == f"yolactpp predict: error: {error}\n"
