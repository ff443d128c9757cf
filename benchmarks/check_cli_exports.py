"""The issue-15 acceptance run, through the CLI: for each model, ``yolactpp export`` to ONNX and pt2,
then ``yolactpp predict`` with the checkpoint, the ``.onnx`` file (in a process where torch and
torchvision cannot be imported) and the ``.pt2`` file; the three JSON outputs must hold the same
detections (count, order, classes), boxes within 0.05 px and scores within 1e-4.

    python benchmarks/check_cli_exports.py --models yolact_plus_resnet50 yolact_base [--images a.jpg b.png]

Prints one line per model and format (export seconds, file MiB, largest deviations) and exits 1 on a
mismatch. Synthetic oracle weights unless ``--weights-dir`` holds the released ``*_54_800000.pth``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from benchmarks._common import checkpoint_for  # noqa: E402

ALL = ("yolact_plus_resnet50", "yolact_plus_base", "yolact_resnet50", "yolact_base", "yolact_darknet53", "yolact_im700")
BLOCK_TORCH = (
    "import sys\n"
    "class _NoTorch:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
    "            raise ImportError(name + ' is blocked')\n"
    "sys.meta_path.insert(0, _NoTorch())\n"
    "from yolactpp.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "assert 'torch' not in sys.modules\n"
    "sys.exit(code)\n"
)


def cli(args: list[str], *, torch_free: bool = False) -> float:
    """Run ``yolactpp ARGS`` in a fresh process; returns its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", BLOCK_TORCH, *args] if torch_free else [sys.executable, "-m", "yolactpp", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"yolactpp {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def _runs(scores: list[float], tie: float = 1e-5) -> list[range]:
    """Consecutive positions whose ranking scores lie within ``tie`` of their neighbour: float32
    rounding may order such near-ties differently (measured: gaps of 1.4e-7 swapped)."""
    runs, start = [], 0
    for i in range(1, len(scores) + 1):
        if i == len(scores) or abs(scores[i] - scores[i - 1]) > tie:
            runs.append(range(start, i))
            start = i
    return runs


def _box_dev(a: dict, b: dict) -> float:
    return max(abs(x - y) for x, y in zip(a["box"], b["box"]))


def compare(reference: Path, candidate: Path) -> tuple[bool, float, float, int]:
    """(same detections, largest box deviation px, largest score deviation, near-tie swaps) of two
    predict outputs. Same count and classes in order, except within runs of near-tied scores."""
    box_dev = score_dev = 0.0
    swaps = 0
    for ref_file in sorted(reference.glob("*.json")):
        if ref_file.name == "predictions.json":
            continue
        ref = json.loads(ref_file.read_text())["detections"]
        got = json.loads((candidate / ref_file.name).read_text())["detections"]
        if len(ref) != len(got):
            return False, float("nan"), float("nan"), swaps
        # detections are ordered by box score (the score before mask re-scoring, where there is one)
        for run in _runs([d.get("box_score", d["score"]) for d in ref]):
            free = list(run)
            for i in run:
                options = [j for j in free if got[j]["class_id"] == ref[i]["class_id"]]
                if not options:
                    return False, float("nan"), float("nan"), swaps
                j = min(options, key=lambda j, i=i: _box_dev(ref[i], got[j]))
                swaps += j != i
                free.remove(j)
                box_dev = max(box_dev, _box_dev(ref[i], got[j]))
                score_dev = max(score_dev, abs(ref[i]["score"] - got[j]["score"]))
    return box_dev <= 0.05 and score_dev <= 1e-4, box_dev, score_dev, swaps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(ALL))
    parser.add_argument("--images", nargs="+", default=[str(p) for p in sorted((REPO / "tests/data/oracle/images").glob("*.png"))])
    parser.add_argument("--no-sample-photos", action="store_true", help="only --images (default: also the 5 bundled photographs)")
    parser.add_argument("--weights-dir", help="folder with the released checkpoints (default: synthetic weights)")
    parser.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "yolactpp-check-exports"))
    args = parser.parse_args()
    out, failed = Path(args.out), False
    out.mkdir(parents=True, exist_ok=True)
    images = list(args.images)
    if not args.no_sample_photos:  # further real photographs, not the parity images
        from PIL import Image

        from yolactpp.quantize.calibration import sample_photographs

        for i, photo in enumerate(sample_photographs()):
            images.append(str(out / f"photo{i}.png"))
            Image.fromarray(photo).save(images[-1])
    options = ["--score-threshold", "0", "-q", "--no-plot"]
    for name in args.models:
        weights = checkpoint_for(name, str(Path(args.weights_dir) / f"{name}_54_800000.pth") if args.weights_dir else None)
        ref_dir = out / name / "checkpoint"
        cli(["predict", *images, "-m", str(weights), "-o", str(ref_dir), *options])
        for fmt in ("onnx", "pt2"):
            file = out / name / f"{name}.{fmt}"
            export_s = cli(["export", "-m", str(weights), "--format", fmt, "-o", str(file)])
            got_dir = out / name / fmt
            cli(["predict", *images, "-m", str(file), "-o", str(got_dir), *options], torch_free=fmt == "onnx")
            ok, box_dev, score_dev, swaps = compare(ref_dir, got_dir)
            failed = failed or not ok
            mib = file.stat().st_size / 2**20
            print(f"{name:22s} {fmt:4s} export {export_s:6.1f} s  {mib:5.0f} MiB  same={ok}  "
                  f"max box dev {box_dev:.2g} px  max score dev {score_dev:.2g}  near-tie swaps {swaps}", flush=True)  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
