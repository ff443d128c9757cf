"""Fixtures for the native-op tests: the compiled library must be present (no silent skips)."""

from __future__ import annotations

import pytest

from yolactpp.ops import _loader

#: Marks a test that needs a CUDA device: skipped without one (tests/conftest.py), selected by
#: ``pytest -m cuda`` (scripts/gpu_check.py runs exactly these on a GPU machine).
cuda = pytest.mark.cuda


@pytest.fixture(scope="session", autouse=True)
def native_ops() -> None:
    """Fail (not skip) when yolactpp._C is missing: these tests exist to check it."""
    assert _loader.native_available(), f"the native ops did not load: {_loader._state['reason']}"


@pytest.fixture(autouse=True)
def auto_backend():
    """Each test starts from the default 'auto' backend."""
    with _loader.use_backend("auto"):
        yield
