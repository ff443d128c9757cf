"""GPU check in one command: build the native ops for the GPU found, test, check and time yolactpp on it.

    scripts/gpu_check.sh [--out DIR]      # on a CUDA machine (``make gpu-check``)
    scripts/gpu_check.sh --cpu-dry-run    # here: the same steps, the CUDA ones skipped (``make gpu-check-dry``)

Made for a lent GPU machine: a fresh one, with no network, minutes of device time. Every step runs
in its own process under its own time limit, and the run goes on past a failed or timed-out step.
The limits add up to ``STEP_LIMITS_S`` (460 s, 7 min 40 s; checked at import), under the 8 minutes
(``BUDGET_S``) the whole check may take. Packages the machine lacks are installed from wheels in ``.whl/`` (downloaded beforehand by
``scripts/gpu_check_prepare.sh``); weights are the test oracle's synthetic checkpoints (no hub).

Writes ``gpu_check.json`` (every step: status, seconds, limit, note, output tail, findings),
``gpu_check.md`` (the same as tables) and ``gpu_check.log`` (every step's full output) into
``--out`` (default: a new ``outputs/gpu_check*`` folder) and prints a one-screen summary.
Exit 0 when no step failed or ran out of time. docs/performance.md ("GPU check") has the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STEPS_PY = str(REPO / "scripts" / "gpu_check_steps.py")
IMAGE = str(REPO / "tests/data/oracle/images/landscape_1280x720.png")
BUDGET_S = 480  # the whole check must finish within 8 minutes of device time
#: A dry run's steps get this many times their GPU limit: CI's CPUs are slow and shared, and the
#: dry run proves the script works, not that it is fast.
DRY_LIMIT_FACTOR = 4
BENCH_MODELS = ("yolact_plus_resnet50", "yolact_base")
BENCH_DTYPES = ("float32", "float16", "bfloat16")
TRAIN_SCRIPT = REPO / "benchmarks" / "bench_train.py"
#: The papers' figures (Titan Xp, batch 1, 550 px, COCO test-dev) as the README of dbolya/yolact lists them.
PAPER_FPS = {
    "yolact_resnet50": 42.5, "yolact_darknet53": 40.0, "yolact_base": 33.5, "yolact_im700": 23.6,
    "yolact_plus_resnet50": 33.5, "yolact_plus_base": 27.3,
}  # fmt: skip
STATUSES = ("ok", "failed", "timeout", "skipped")


@dataclass(frozen=True)
class Context:
    """What a step's command depends on: the mode, the interpreter and where files go."""

    dry: bool
    python: str
    work: Path
    data: Path

    def json_for(self, step: str) -> str:
        return str(self.data / f"{step}.json")

    def checkpoint(self, model: str) -> str:
        return str(self.work / "weights" / f"{model}_54_800000.pth")


#: A step's command for this context, or the reason it is skipped.
Plan = Callable[[Context], "list[str] | str"]


@dataclass(frozen=True)
class Step:
    """One step: its name, time limit on a GPU machine, a one-line description and its command."""

    name: str
    limit_s: int
    what: str
    plan: Plan


@dataclass
class Outcome:
    """How a step went: ``status`` is one of STATUSES; ``data`` holds what the step wrote."""

    name: str
    what: str
    limit_s: int
    status: str = "skipped"
    seconds: float = 0.0
    returncode: int | None = None
    note: str = ""
    command: list[str] = field(default_factory=list)
    output_tail: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


# -- the steps ---------------------------------------------------------------------------------------
def _module(ctx: Context, *args: str) -> list[str]:
    return [ctx.python, "-m", *args]


def _steps_cmd(ctx: Context, step: str, *args: str) -> list[str]:
    """A subcommand of gpu_check_steps.py, writing its findings where the report looks for them."""
    return [ctx.python, STEPS_PY, step, "--json", ctx.json_for(step), *args]


def _install(ctx: Context) -> list[str]:
    wheels = REPO / ".whl"
    if ctx.dry:
        return _steps_cmd(ctx, "install")
    return _steps_cmd(ctx, "install", "--wheels", str(wheels), "--target", str(ctx.work / "site"))


def _build_ops(ctx: Context) -> list[str] | str:
    if ctx.dry:
        return "dry run: compiling the CUDA kernels takes minutes; the next step reports the ops this machine has"
    return _module(ctx, "yolactpp", "build-ops")


def _pytest(name: str, *selection: str) -> Plan:
    def plan(ctx: Context) -> list[str]:
        junit = str(ctx.data / f"{name}.xml")
        return _module(ctx, "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--junitxml", junit, *selection)

    return plan


def _selfcheck(ctx: Context) -> list[str]:
    return _steps_cmd(ctx, "selfcheck", "--device", "cpu" if ctx.dry else "cuda")


def _onnx(ctx: Context) -> list[str]:
    model = BENCH_MODELS[0]
    device = "cpu" if ctx.dry else "cuda"
    return _steps_cmd(
        ctx, "onnx", "--device", device, "--weights", ctx.checkpoint(model), "--config", model, "--work", str(ctx.work)
    )  # fmt: skip


def _bench(model: str, batch: int) -> Plan:
    name = f"bench-{model}-b{batch}"

    def plan(ctx: Context) -> list[str] | str:
        cmd = _module(ctx, "yolactpp", "benchmark", "-m", ctx.checkpoint(model), "--config", model, "--image", IMAGE)
        cmd += ["--batch-size", str(batch), "--json", ctx.json_for(name)]
        if ctx.dry:
            if (model, batch) != (BENCH_MODELS[0], 1):
                return f"dry run: too slow on this CPU; bench-{BENCH_MODELS[0]}-b1 runs the same command"
            return [*cmd, "--device", "cpu", "--dtype", "float32", "--warmup", "0", "--reps", "1"]
        cmd += ["--device", "cuda", "--dtype", BENCH_DTYPES[0]]
        for dtype in BENCH_DTYPES[1:]:
            cmd += ["--also", f"{ctx.checkpoint(model)}@{dtype}"]
        return [*cmd, "--warmup", "3", "--reps", "20" if batch == 1 else "8"]

    return plan


def _maskrcnn(ctx: Context) -> list[str]:
    cmd = _steps_cmd(ctx, "maskrcnn")
    if ctx.dry:
        small = ["--dtypes", "float32", "--batches", "1", "--size", "128", "--image-size", "320x180", "--reps", "1"]
        return [*cmd, "--device", "cpu", "--warmup", "0", *small]
    return [*cmd, "--device", "cuda", "--dtypes", "float32,float16", "--batches", "1,8", "--reps", "8"]


def _train(ctx: Context) -> list[str] | str:
    if not TRAIN_SCRIPT.exists():
        return f"{TRAIN_SCRIPT.relative_to(REPO)} is not in this checkout"
    return [ctx.python, str(TRAIN_SCRIPT), "--help"] if ctx.dry else [ctx.python, str(TRAIN_SCRIPT), "--device", "cuda"]


STEPS: tuple[Step, ...] = (
    Step("env", 10, "Python, torch, CUDA, the GPU", lambda ctx: _steps_cmd(ctx, "env")),
    Step("install", 20, "wheels from .whl/, then import every needed module", _install),
    Step("weights", 10, "synthetic checkpoints of the benchmarked models", lambda ctx: _steps_cmd(ctx, "weights", "--dir", str(ctx.work / "weights"), *BENCH_MODELS)),
    Step("build-ops", 100, "yolactpp build-ops for the GPU found", _build_ops),
    Step("ops", 15, "yolactpp build-ops --check: which backend runs each op", lambda ctx: _module(ctx, "yolactpp", "build-ops", "--check")),
    Step("selfcheck", 20, "native kernels against their references (ops/_selfcheck.py)", _selfcheck),
    Step("cuda-tests", 35, "pytest -m cuda tests/ops", _pytest("cuda-tests", "-m", "cuda", "tests/ops")),
    Step("parity", 60, "oracle parity on CUDA: float64, float32, float16, bfloat16", _pytest("parity", "tests/test_cuda_parity.py")),
    Step("onnx", 45, "ONNX export on onnxruntime's CUDA (and TensorRT) provider", _onnx),
    *(Step(f"bench-{m}-b{b}", 25, f"yolactpp benchmark {m}, batch {b}, {'/'.join(BENCH_DTYPES)}", _bench(m, b)) for m in BENCH_MODELS for b in (1, 8)),
    Step("maskrcnn", 25, "torchvision Mask R-CNN, batch 1 and 8, float32/float16", _maskrcnn),
    Step("train", 20, "training-step timing (benchmarks/bench_train.py), if present", _train),
)  # fmt: skip
STEP_LIMITS_S = sum(step.limit_s for step in STEPS)
assert STEP_LIMITS_S < BUDGET_S, f"the step limits add up to {STEP_LIMITS_S} s, over the {BUDGET_S} s budget"


# -- running them ------------------------------------------------------------------------------------
def _run(cmd: list[str], limit_s: int, env: dict[str, str], log: Any) -> tuple[int | None, float, list[str]]:
    """Run ``cmd`` in its own process group; kill the group at ``limit_s``. (returncode or None, seconds, lines)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=limit_s)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        code = None
    log.write(out)
    log.flush()
    return code, time.monotonic() - start, out.splitlines()


def _junit_counts(path: Path) -> dict[str, int]:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def _findings(step: str, ctx: Context) -> dict[str, Any]:
    """What the step wrote: its JSON (``yolactpp benchmark --json`` writes a list: the rows) or pytest's counts."""
    path = Path(ctx.json_for(step))
    if path.exists():
        found = json.loads(path.read_text())
        return {"rows": found} if isinstance(found, list) else dict(found)
    junit = ctx.data / f"{step}.xml"
    return {"pytest": _junit_counts(junit)} if junit.exists() else {}


def _note(outcome: Outcome) -> str:
    d = outcome.data
    if "skipped" in d:
        return str(d["skipped"])
    if "pytest" in d:
        counts = d["pytest"]
        return (
            ", ".join(f"{counts[k]} {k}" for k in ("passed", "failures", "errors", "skipped") if counts[k])
            or "no tests"
        )
    if outcome.name == "env":
        gpu = f"{d.get('gpu')} (sm {d.get('capability')})" if d.get("cuda_available") else "no CUDA device"
        return f"torch {d.get('torch')} CUDA {d.get('torch_cuda')}, {gpu}"
    if outcome.name == "install":
        missing = ", ".join(d.get("missing", {}))
        return f"{len(d.get('wheels', []))} wheels; " + (
            f"missing: {missing}" if missing else f"{len(d.get('versions', {}))} modules import"
        )
    if outcome.name == "weights":
        return f"{len(d.get('checkpoints', {}))} checkpoints written"
    if outcome.name == "selfcheck":
        return "; ".join(
            f"{op} on {d.get('device')}: {why or 'ok'}" for op, why in d.get("results", {}).items()
        ) or d.get("error", "")
    if "rows" in d:
        return f"{len(d['rows'])} timing rows"
    return outcome.output_tail[-1][:160] if outcome.output_tail else ""


def _all_skipped(data: dict[str, Any]) -> bool:
    """pytest ran and skipped every test it collected (the CUDA tests on a machine without CUDA)."""
    counts = data.get("pytest", {})
    return bool(counts) and counts["tests"] == counts["skipped"] > 0


def run_step(step: Step, ctx: Context, env: dict[str, str], log: Any) -> Outcome:
    limit = step.limit_s * (DRY_LIMIT_FACTOR if ctx.dry else 1)
    outcome = Outcome(step.name, step.what, limit)
    planned = step.plan(ctx)
    log.write(f"\n===== {step.name} (limit {limit} s) =====\n")
    if isinstance(planned, str):
        outcome.note = planned
        log.write(f"skipped: {planned}\n")
        return outcome
    outcome.command = planned
    log.write("$ " + " ".join(planned) + "\n")
    log.flush()
    code, outcome.seconds, lines = _run(planned, limit, env, log)
    outcome.returncode, outcome.output_tail = code, lines[-25:]
    try:
        found = _findings(step.name, ctx)
    except (OSError, ValueError, ET.ParseError) as exc:
        found = {"unreadable": f"{type(exc).__name__}: {exc}"}
    outcome.data = found
    if code is None:
        outcome.status = "timeout"
    elif code != 0:
        outcome.status = "failed"
    else:
        outcome.status = "skipped" if "skipped" in outcome.data or _all_skipped(outcome.data) else "ok"
    outcome.note = ("dry run: " if ctx.dry and outcome.status in ("ok", "skipped") else "") + _note(outcome)
    if outcome.status == "timeout":
        outcome.note = f"stopped at its {limit} s limit; " + outcome.note
    return outcome


# -- the report ----------------------------------------------------------------------------------------
def timing_rows(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for o in outcomes:
        rows += [dict(r, step=o.name) for r in o.data.get("rows", [])]
    return rows


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)])


def step_table(outcomes: list[Outcome], width: int = 0) -> str:
    rows = [[o.name, o.status, f"{o.seconds:.0f}/{o.limit_s}", o.note[:width] if width else o.note] for o in outcomes]
    return _table(["step", "status", "s / limit", "note"], rows)


def timing_table(rows: list[dict[str, Any]], gpu: str) -> str:
    body = []
    for r in rows:
        fps = r["images_per_s"] if r["batch_size"] == 1 else ""
        paper = PAPER_FPS.get(r["model"], "") if r["batch_size"] == 1 and r["runtime"] == "torch" else ""
        body.append([
            r["model"], r["runtime"], r["dtype"], str(r["batch_size"]), gpu if r["device"].startswith("cuda") else r["device"],
            f"{r['median_ms']}", f"{r['images_per_s']}", str(fps), f"{paper} (Titan Xp)" if paper else "",
        ])  # fmt: skip
    header = ["model", "runtime", "dtype", "batch", "device", "median ms", "img/s", "fps (batch 1)", "paper fps"]
    return _table(header, body)


def write_report(out: Path, ctx: Context, outcomes: list[Outcome], started: str) -> dict[str, Any]:
    env_data = next((o.data for o in outcomes if o.name == "env"), {})
    gpu = str(env_data.get("gpu", "cuda"))
    rows = timing_rows(outcomes)
    report = {
        "mode": "cpu-dry-run" if ctx.dry else "gpu",
        "started": started,
        "budget_s": BUDGET_S,
        "step_limits_s": STEP_LIMITS_S,
        "environment": env_data,
        "steps": [o.__dict__ for o in outcomes],
        "timings": rows,
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    title = "yolactpp GPU check" + (" (--cpu-dry-run: CUDA steps skipped)" if ctx.dry else "")
    md = [
        f"# {title}",
        "",
        f"Started {started}; {_note(next(o for o in outcomes if o.name == 'env')) if outcomes else ''}.",
        f"Step limits add up to {STEP_LIMITS_S} s (budget {BUDGET_S} s).",
        "",
        step_table(outcomes),
        "",
        "## Timings (median of the timed calls; image 1280x720, masks at full size)",
        "",
        timing_table(rows, gpu) if rows else "(no timings)",
        "",
    ]
    (out / "gpu_check.md").write_text("\n".join(md))
    return report


def _new_out_dir(root: Path) -> Path:
    """``outputs/gpu_check``, or ``gpu_check2``, ``gpu_check3``...: never an earlier run's folder."""
    candidate, n = root / "gpu_check", 2
    while candidate.exists():
        candidate, n = root / f"gpu_check{n}", n + 1
    return candidate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="run every step here without a GPU: CUDA steps are skipped or run small on the CPU",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="folder for gpu_check.json/.md/.log (default: a new outputs/gpu_check* folder); must hold no earlier results",
    )
    parser.add_argument(
        "--work",
        metavar="DIR",
        help="scratch folder for weights, the ops build and exports, kept (default: a temporary one, removed at the end)",
    )
    parser.add_argument("--only", metavar="STEP,...", help="run only these steps (names as in the summary)")
    args = parser.parse_args(argv)

    out = Path(args.out) if args.out else _new_out_dir(REPO / "outputs")
    if (out / "gpu_check.json").exists():
        parser.error(f"{out} already holds a gpu_check.json; choose another --out (results are never overwritten)")
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="yolactpp-gpu-check-"))
    (work / "data").mkdir(parents=True, exist_ok=True)
    ctx = Context(dry=args.cpu_dry_run, python=sys.executable, work=work, data=work / "data")
    names = {s.name for s in STEPS}
    only = set(args.only.split(",")) if args.only else names
    if only - names:
        parser.error(f"--only: unknown steps {sorted(only - names)}; choose from {', '.join(s.name for s in STEPS)}")

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the carried wheels' folder first (newer than the image's copies), then this checkout's sources
    paths = ([] if ctx.dry else [str(work / "site")]) + [str(REPO / "src"), str(REPO)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if not ctx.dry:
        env["YOLACTPP_OPS_CACHE"] = str(work / "ops")  # a build for this GPU, not one found lying around
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    mode = "--cpu-dry-run: CUDA steps skipped or run small on the CPU" if ctx.dry else "GPU run"
    print(f"yolactpp GPU check, {mode}; {len(STEPS)} steps, limits add up to {STEP_LIMITS_S} s (budget {BUDGET_S} s)")
    outcomes: list[Outcome] = []
    with open(out / "gpu_check.log", "w") as log:
        for step in STEPS:
            if step.name not in only:
                outcomes.append(Outcome(step.name, step.what, step.limit_s, note="not selected (--only)"))
                continue
            outcome = run_step(step, ctx, env, log)
            outcomes.append(outcome)
            print(f"  {outcome.name:<28} {outcome.status:<8} {outcome.seconds:5.0f} s  {outcome.note[:90]}", flush=True)
    report = write_report(out, ctx, outcomes, started)
    if args.work is None:  # our own scratch folder: checkpoints and builds of a few hundred MB
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(step_table(outcomes, width=70))
    if report["timings"]:
        print()
        print(timing_table(report["timings"], str(report["environment"].get("gpu", "cuda"))))
    bad = [o.name for o in outcomes if o.status in ("failed", "timeout")]
    total = sum(o.seconds for o in outcomes)
    print(
        f"\n{len(bad)} of {len(outcomes)} steps failed{': ' + ', '.join(bad) if bad else ''}; {total:.0f} s in steps."
    )
    print(f"results: {out / 'gpu_check.json'}, {out / 'gpu_check.md'}, {out / 'gpu_check.log'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
