"""Print the parity table: every oracle case x (float64, float32) x ops backend, largest deviations.

The assertions are the test suite's (tests/oracle/compare.py); this script only collects the
figures for docs/parity.md and closing notes. Run from the repository root:

    .venv/bin/python scripts/parity_report.py [--backends native,fallback]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.oracle.checkpoints import CONFIGS, write_checkpoint  # noqa: E402
from tests.oracle.compare import IMAGES, check_float32, check_float64, golden, image_path  # noqa: E402
from yolactpp import YolactPP  # noqa: E402
from yolactpp.ops import use_backend  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="native,fallback")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| backend | config | image | n | f64 max score rel | f64 max box px | f64 min mask IoU "
          "| f64 differing px | f32 matched | f32 max score abs | f32 min box IoU | f32 min mask IoU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            with use_backend(backend):
                for config in CONFIGS:
                    path = write_checkpoint(config, Path(tmp))
                    model32 = YolactPP.from_pretrained(path)
                    model64 = YolactPP.from_pretrained(path).to(torch.float64)
                    for image in IMAGES:
                        g = golden(config, image)
                        r64 = check_float64(model64.predict(image_path(image)), g)
                        r32 = check_float32(model32.predict(image_path(image)), g)
                        print(f"| {backend} | {config} | {image} | {r64.count} | {r64.max_score_rel:.1e} "
                              f"| {r64.max_box_abs:.1e} | {r64.min_mask_iou:.6f} | {r64.differing_pixels} "
                              f"| {r32.matched}/{r32.eligible} | {r32.max_score_abs:.1e} | {r32.min_box_iou:.5f} "
                              f"| {r32.min_mask_iou:.4f} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
