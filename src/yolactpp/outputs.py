"""Where files the library writes may go: never over what the user gave, never half-written.

Every writer of a single output file (``export``, ``quantize``, ``ExportedModel.save``) checks its
destination with :func:`check_output_file` before the slow work starts, and writes through
:func:`staged_file`: a temporary file beside the target that replaces it only once complete (and,
for exports, verified), so an interrupted or failed run leaves the previous file, or none.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from yolactpp.errors import YolactppError

__all__ = ["OutputExistsError", "OutputPathError", "check_output_file", "same_file", "staged_file"]


class OutputPathError(YolactppError, OSError):
    """An output path that cannot be written (a folder, under a file, not writable, or an input)."""


class OutputExistsError(YolactppError, FileExistsError):
    """An output file that exists already and was not allowed to be replaced (``overwrite=False``)."""


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same existing file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(
    path: str | os.PathLike[str],
    *,
    suffix: str | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    what: str = "output",
) -> Path:
    """``path`` as a :class:`Path` once it is known to be a writable place for a new file.

    Refuses (before anything is computed): a name not ending in ``suffix``; one of ``inputs``
    (even with ``overwrite``); an existing folder; a path under a file; an existing file unless
    ``overwrite``; a folder that cannot be created or written (checked by creating a file there).
    """
    target = Path(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise OutputPathError(f"the {what} must end in {suffix}, got {target.name!r}")
    for source in inputs:
        if same_file(target, Path(source)):
            raise OutputPathError(f"the {what} {target} is an input file; choose another name (it is never replaced)")
    if target.is_dir():
        raise OutputPathError(f"the {what} {target} is a folder; give a file name ending in {suffix or 'its suffix'}")
    if target.exists() and not overwrite:
        raise OutputExistsError(f"the {what} {target} exists; pass overwrite=True (--overwrite) to replace it")
    _check_writable_folder(target.parent, what)
    return target


def _check_writable_folder(folder: Path, what: str) -> None:
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(f"cannot write the {what} under {parent}: it is a file, not a folder")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".yolactpp-write-check-"):
            pass
    except OSError as exc:
        raise OutputPathError(f"cannot write the {what} in {folder}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def staged_file(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (same folder, same suffix) to write to; on a clean exit it
    replaces ``target`` atomically, on an exception it is deleted and ``target`` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".partial{target.suffix}")
    os.close(handle)
    staging = Path(name)
    try:
        yield staging
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
