"""An export is done only once it has run: load the new file in a child process, run it on a fixed
input and compare with the eager graph.

A child process, because a broken file does not fail politely: an AOTInductor package compiled
with AVX-512 code paths that miscompile on some CPUs (seen on AMD Zen 4) kills the process that
loads it (``double free or corruption``, SIGSEGV). The exporter catches that here, before the
file reaches its final name, and can recompile with a safer setting (:mod:`yolactpp.export.pt2`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from yolactpp.config import ModelConfig
    from yolactpp.export.graph import DeploymentGraph

__all__ = ["ProbeResult", "compare_outputs", "eager_outputs", "probe_feeds", "run_in_child"]

#: Seconds a child may take to load and run the file once (large pt2 packages load in ~10 s).
CHILD_TIMEOUT = 600.0
#: Tolerances between the eager graph and the exported file on the probe input (float32 rounding,
#: runtimes reorder sums); a miscompiled kernel is off by far more.
SCORE_ATOL = 2e-3
BOX_ATOL = 2e-3
#: Share of the eager detections that must have an exported twin (the rest: ties swapped at the cap).
MATCHED_FRACTION = 0.9


def probe_feeds(config: ModelConfig, top_k: int) -> dict[str, np.ndarray]:
    """The fixed input an export is checked on: two smooth, different images (so the dynamic
    batch is exercised) at the model's input size, the config's detection settings and ``top_k``."""
    size = config.preprocess.size
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    first = np.stack([np.sin(6 * x + c) * np.cos(4 * y - c) for c in range(3)])
    second = np.stack([np.cos(5 * (x - y) + c) + (x > 0.5) - 0.5 for c in range(3)])
    return {
        "images": np.stack([first, second]).astype(np.float32) * 1.5,
        "conf_threshold": np.asarray(config.detect.conf_threshold, dtype=np.float32),
        "iou_threshold": np.asarray(config.detect.iou_threshold, dtype=np.float32),
        "top_k": np.asarray(top_k, dtype=np.int64),
        "class_mask": np.ones(config.num_classes, dtype=bool),
    }


def eager_outputs(graph: DeploymentGraph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The traced graph's outputs on ``feeds``, run eagerly in this process."""
    import torch

    from yolactpp.export.graph import INPUT_NAMES, output_names

    args = [torch.from_numpy(np.asarray(feeds[name])) for name in INPUT_NAMES]
    with torch.inference_mode():
        outputs = graph(*args)
    return {name: out.float().numpy() if out.is_floating_point() else out.numpy()
            for name, out in zip(output_names(graph.network.config), outputs)}  # fmt: skip


@dataclass(frozen=True)
class ProbeResult:
    """What the child process reported: its outputs, or how it died."""

    outputs: dict[str, np.ndarray] | None
    returncode: int
    log: str

    @property
    def crash(self) -> str | None:
        """``None`` when the child ran the file, else what happened, in words."""
        if self.outputs is not None:
            return None
        code = self.returncode
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            cause = f"the process loading it was killed by {name}"
        else:
            cause = f"the process loading it exited with status {code}"
        last = [line.strip() for line in self.log.strip().splitlines() if line.strip()]
        return f"{cause} ({last[-1]})" if last else cause


def _child_command(path: Path, feeds: Path, result: Path) -> list[str]:
    return [sys.executable, "-m", "yolactpp.export._probe", str(path), str(feeds), str(result)]


def run_in_child(path: Path, feeds: dict[str, np.ndarray], *, timeout: float = CHILD_TIMEOUT) -> ProbeResult:
    """Load and run the exported ``path`` once on ``feeds`` in a fresh Python process."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding ``yolactpp``
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="yolactpp-probe-") as work:
        feeds_file, result_file = Path(work) / "feeds.npz", Path(work) / "outputs.npz"
        np.savez(feeds_file, allow_pickle=False, **feeds)
        try:
            proc = subprocess.run(
                _child_command(path, feeds_file, result_file),
                env=env, capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return ProbeResult(None, 124, f"no result within {timeout:.0f} s")
        if proc.returncode != 0 or not result_file.is_file():
            return ProbeResult(None, proc.returncode or 1, proc.stderr[-2000:])
        with np.load(result_file) as data:
            return ProbeResult({name: data[name] for name in data.files}, 0, proc.stderr[-2000:])


def compare_outputs(expected: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> str | None:
    """``None`` when the exported outputs match the eager ones on the probe input, else how they differ.

    Near-tied scores may come out in another order (or swap at the detection cap) after runtimes
    reorder sums, so detections are matched as sets: the sorted scores must agree, and nearly
    every eager detection must have an exported one of the same class, score and box. A
    miscompiled kernel fails all of these by far.
    """
    missing = sorted(set(expected) - set(got))
    if missing:
        return f"outputs {missing} are missing"
    counts, got_counts = expected["count"].astype(np.int64), got["count"].astype(np.int64)
    if counts.shape != got_counts.shape:
        return f"{got_counts.size} image results instead of {counts.size}"
    for i, (n, m) in enumerate(zip(counts.tolist(), got_counts.tolist())):
        if abs(n - m) > max(2, n // 20):
            return f"{m} detections in image {i} instead of {n}"
        k = min(n, m)
        want = {name: expected[name][i, :n].astype(np.float64) for name in ("scores", "boxes", "labels")}
        have = {name: got[name][i, :m].astype(np.float64) for name in ("scores", "boxes", "labels")}
        if not np.all(np.isfinite(have["scores"])) or not np.all(np.isfinite(have["boxes"])):
            return f"image {i} has NaN or infinite scores or boxes"
        sorted_want, sorted_have = np.sort(want["scores"])[::-1][:k], np.sort(have["scores"])[::-1][:k]
        if k and not np.allclose(sorted_have, sorted_want, atol=SCORE_ATOL, rtol=0):
            worst = float(np.abs(sorted_have - sorted_want).max())
            return f"scores of image {i} differ from the eager model's by up to {worst:.3g}"
        matched = 0
        for j in range(n):
            close = (
                (have["labels"] == want["labels"][j])
                & (np.abs(have["scores"] - want["scores"][j]) <= SCORE_ATOL)
                & (np.abs(have["boxes"] - want["boxes"][j]).max(axis=1) <= BOX_ATOL)
            )
            matched += bool(close.any())
        if matched < MATCHED_FRACTION * n:
            return f"only {matched} of the {n} detections of image {i} match the eager model's (class, score and box)"
    return None
