"""The base classes of everything yolactpp raises or warns on purpose.

Each concrete error also keeps a builtin base (``ValueError``, ``OSError``, ...) so existing
``except ValueError`` code keeps working; ``except YolactppError`` catches every deliberate
failure of the library and nothing else, which is how the CLI tells a user mistake (one line,
exit 2) from a library bug (traceback, exit 1).
"""

from __future__ import annotations

__all__ = ["YolactppError", "YolactppWarning"]


class YolactppError(Exception):
    """Base of every error yolactpp raises deliberately (bad input, bad weights, bad config, ...)."""


class YolactppWarning(UserWarning):
    """Base of every warning yolactpp issues deliberately."""
