"""The base classes of everything yolactpp raises or warns on purpose.

Each concrete error also keeps a builtin base (``ValueError``, ``OSError``, ...) so existing
``except ValueError`` code keeps working; ``except YolactppError`` catches every deliberate
failure of the library and nothing else, which is how the CLI tells a user mistake (one line,
exit 2) from a library bug (traceback, exit 1).

The generic errors here serve modules without a more specific one of their own (images have
:class:`~yolactpp.preprocess.InvalidImageError`, weights :class:`~yolactpp.checkpoint.CheckpointError`, ...).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DatasetError",
    "DatasetWarning",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidIndexError",
    "MissingDependencyError",
    "MissingFileError",
    "OnError",
    "PredictionFailure",
    "YolactppError",
    "YolactppWarning",
    "is_item_error",
    "require_extra",
    "warn_caller",
]


class YolactppError(Exception):
    """Base of every error yolactpp raises deliberately (bad input, bad weights, bad config, ...)."""


class YolactppWarning(UserWarning):
    """Base of every warning yolactpp issues deliberately."""


class InvalidArgumentError(YolactppError, ValueError):
    """An argument value a function does not accept (out of range, wrong shape, unknown choice)."""


class InvalidArgumentTypeError(YolactppError, TypeError):
    """An argument of a type a function does not accept."""


class InvalidIndexError(YolactppError, IndexError):
    """An index outside a sequence (e.g. a detection number past the end)."""


class MissingFileError(YolactppError, FileNotFoundError):
    """A file or folder the caller named does not exist."""


class DatasetError(YolactppError, ValueError):
    """Training or validation data that cannot be used as it is: a malformed annotation file, a
    missing or unreadable image, an annotation that contradicts its image.

    The message names the file and the image / annotation ids; ``problems`` holds one line per
    problem found (validation collects them all before raising, so a user fixes a file in one go).
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class DatasetWarning(YolactppWarning):
    """Something in the training data worth knowing that does not stop training (skipped annotations)."""


class MissingDependencyError(YolactppError, ImportError):
    """An optional dependency (an extra such as ``video`` or ``ray``) is not installed; the message
    says what to install."""


def require_extra(modules: Sequence[str], extra: str, purpose: str) -> None:
    """Raise :class:`MissingDependencyError` naming ``pip install 'yolactpp[<extra>]'`` when one of
    ``modules`` is not installed (checked without importing them), before any work starts."""
    import importlib.util

    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing, or a module set to None
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise MissingDependencyError(
            f"{purpose} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed: "
            f"pip install 'yolactpp[{extra}]'"
        )


def is_item_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the failure of one input item (a deliberate :class:`YolactppError`, or the
    operating system failing to read a file), as opposed to a library bug or an interrupt.

    Batch runners (``iter_predict(on_error=...)``, ``yolactpp predict``, the Ray ``Predictor``)
    go on past these and stop on anything else.
    """
    return isinstance(exc, (YolactppError, OSError))


#: What :meth:`~yolactpp.YolactPP.iter_predict` does with an item that cannot be predicted.
OnError = Literal["raise", "skip", "yield"]


@dataclass(frozen=True)
class PredictionFailure:
    """What ``iter_predict(..., on_error="yield")`` yields in place of an item that failed.

    ``index`` is the item's 0-based position in the input stream, ``source`` its path when it was
    given as one (else ``None``), ``error`` the exception (an :class:`InvalidImageError` for an
    unreadable or corrupt image, an ``OSError`` for a file the system could not read).
    Tell the two apart with ``isinstance(result, PredictionFailure)``.
    """

    index: int
    source: str | None
    error: BaseException

    @property
    def message(self) -> str:
        """The error in one line, naming the item."""
        text = " ".join(str(self.error).split()) or type(self.error).__name__
        label = self.source if self.source is not None else f"item {self.index}"
        return text if label in text else f"{label}: {text}"


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _internal_dirs() -> tuple[str, ...]:
    """Frames a warning should look past: this package, and torch (its module machinery runs
    between our layers) when it is loaded."""
    torch = sys.modules.get("torch")
    torch_file = getattr(torch, "__file__", None)
    if torch_file is None:
        return (_PACKAGE_DIR,)
    return (_PACKAGE_DIR, os.path.dirname(os.path.abspath(torch_file)) + os.sep)


def warn_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside yolactpp (and torch), i.e. the
    user's line that called into the library, however deep inside it the warning arises."""
    internal = _internal_dirs()
    frame = sys._getframe(1)
    level = 2  # stacklevel 2 = warn_caller's caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(internal):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
