"""Benchmark statistics and table (the end-to-end command is exercised in test_cli.py)."""

from __future__ import annotations

import numpy as np
import pytest

from yolactpp.benchmark import BenchmarkResult, format_table, synthetic_image


def _result(times: tuple[float, ...]) -> BenchmarkResult:
    return BenchmarkResult("m", "cpu", "float32", 2, (720, 1280), 1, times)


def test_median_p90_and_throughput() -> None:
    r = _result((0.5, 0.1, 0.2, 0.3, 0.4))
    assert r.median == pytest.approx(0.3)
    assert r.p90 == pytest.approx(0.46)  # linear interpolation between 0.4 and 0.5
    assert r.images_per_second == pytest.approx(2 / 0.3)
    row = r.row()
    assert row["median_ms"] == 300.0 and row["reps"] == 5 and row["image_size"] == "1280x720"


def test_table_has_one_row_per_result() -> None:
    lines = format_table([_result((0.1,)), _result((0.2, 0.4))]).splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "model"
    assert lines[2].split()[-4:] == ["300.0", "380.0", "6.67", "0.33"]  # speed-up over row 1: 100 / 300 ms
    assert lines[1].split()[-1] == "1.00" and lines[0].endswith("x vs row 1")
    single = format_table([_result((0.1,))]).splitlines()
    assert single[1].split()[-1] == "20.0" and "vs row" not in single[0]


def test_synthetic_image_shape_and_determinism() -> None:
    a, b = synthetic_image(48, 64), synthetic_image(48, 64)
    assert a.shape == (48, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert a.std() > 10  # not a flat image
