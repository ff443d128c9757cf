"""scripts/gpu_check.py: the dry run end to end on this CPU, and the GPU run's plan on paper.

The dry run is the same script a GPU machine runs, with the CUDA steps skipped (or run small on
the CPU): every step must come back with a status, none may fail, and the results file must hold
the step table and timing rows. The GPU plan is checked without a GPU: each step's command.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gpu_check.py"


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("gpu_check") / "out"
    work = tmp_path_factory.mktemp("gpu_check_work")
    cmd = [sys.executable, str(SCRIPT), "--cpu-dry-run", "--out", str(out), "--work", str(work)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=1500, cwd=REPO), out


def test_dry_run_reports_every_step_with_a_status(dry_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = dry_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report: dict[str, Any] = json.loads((out / "gpu_check.json").read_text())
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == [s.name for s in gpu_check.STEPS]
    assert all(s["status"] in ("ok", "skipped") and s["note"] for s in steps.values()), steps  # none failed
    assert report["mode"] == "cpu-dry-run" and report["step_limits_s"] == gpu_check.STEP_LIMITS_S < 480
    # CUDA-only work says why it did not run; the CUDA tests were collected and skipped, not lost
    assert steps["build-ops"]["status"] == "skipped" and steps["build-ops"]["note"].startswith("dry run")
    for name in ("cuda-tests", "parity"):
        counts = steps[name]["data"]["pytest"]
        assert steps[name]["status"] == "skipped" and counts["tests"] == counts["skipped"] > 0
    assert steps["selfcheck"]["data"]["results"] == {"deform_conv2d": None, "fast_nms": None}
    timed = {(r["model"], r["batch_size"], r["device"]) for r in report["timings"]}
    assert ("yolact_plus_resnet50", 1, "cpu") in timed and ("maskrcnn_resnet50_fpn", 1, "cpu") in timed
    table = (out / "gpu_check.md").read_text()
    assert all(f"| {name} " in table for name in steps) and "paper fps" in table
    assert "===== parity" in (out / "gpu_check.log").read_text()
    assert "0 of 15 steps failed" in proc.stdout


def test_results_are_never_overwritten(dry_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = dry_run
    before = (out / "gpu_check.json").read_bytes()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-dry-run", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "already holds a gpu_check.json" in proc.stderr
    assert (out / "gpu_check.json").read_bytes() == before


def test_gpu_plan_on_paper(tmp_path: Path) -> None:
    """Without a GPU, what a GPU run would execute: every step planned, the benchmarks on CUDA in
    the three dtypes at batch 1 and 8, the native ops built into a fresh cache, within budget."""
    ctx = gpu_check.Context(dry=False, python="python3", work=tmp_path, data=tmp_path / "data")
    plans = {step.name: step.plan(ctx) for step in gpu_check.STEPS}
    skipped = {name for name, plan in plans.items() if isinstance(plan, str)}
    assert skipped <= {"train"}  # only the optional training timing, while bench_train.py is absent
    assert plans["build-ops"][-2:] == ["yolactpp", "build-ops"]
    assert plans["cuda-tests"][-3:] == ["-m", "cuda", "tests/ops"]
    for model in ("yolact_plus_resnet50", "yolact_base"):
        for batch in ("1", "8"):
            cmd = plans[f"bench-{model}-b{batch}"]
            assert cmd[cmd.index("--device") + 1] == "cuda" and cmd[cmd.index("--batch-size") + 1] == batch
            also = [cmd[i + 1].rsplit("@", 1)[1] for i, a in enumerate(cmd) if a == "--also"]
            assert [cmd[cmd.index("--dtype") + 1], *also] == ["float32", "float16", "bfloat16"]
    assert sum(s.limit_s for s in gpu_check.STEPS) == gpu_check.STEP_LIMITS_S < gpu_check.BUDGET_S == 480


def test_docs_list_every_step_with_its_limit() -> None:
    """docs/performance.md's step table is the script's (names, order, limits)."""
    text = (REPO / "docs" / "performance.md").read_text().split("## GPU check", 1)[1]
    rows = [
        line.split("|")[1:3]
        for line in text.splitlines()
        if line.startswith("| ") and line.split("|")[2].strip().isdigit()
    ]
    assert [(name.strip(), int(limit)) for name, limit in rows] == [(s.name, s.limit_s) for s in gpu_check.STEPS]
    assert f"add up to {gpu_check.STEP_LIMITS_S} s" in text
