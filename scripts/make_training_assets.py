"""Regenerate the pictures of docs/training.md: the learning test's run, drawn.

Trains the tiny YOLACT of the learning test (tests/train/tiny.py: 96 px, trained from scratch on
600 generated shapes images) and writes ``docs/assets/training_curves.png`` (loss terms and
validation AP every 100 iterations) and ``docs/assets/training_before_after.png`` (four held-out images:
the untrained model's detections above, the trained model's below). Prints the AP before and
after. Run from the repository root: ``python scripts/make_training_assets.py [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from tests.train.tiny import LEARNING_IMAGES, LEARNING_OPTIONS, LEARNING_SIZE, learning_data, learning_model  # noqa: E402
from yolactpp.evaluate import evaluate_coco  # noqa: E402
from yolactpp.train.shapes import make_shapes_splits  # noqa: E402

ASSETS = ROOT / "docs" / "assets"
SHOWN = 4
SCALE = 2  # 96 px images drawn at 192 px
VAL_EVERY = 100  # the test validates at the end only; the picture shows the AP curve


def _row(model, paths: list[Path]) -> Image.Image:
    tiles = []
    for path in paths:
        det = model.predict(str(path)).filter(min_score=0.3)
        picture = det.plot(line_width=1, font_size=9)
        tiles.append(picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST))
    row = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), (255, 255, 255))
    x = 0
    for tile in tiles:
        row.paste(tile, (x, 0))
        x += tile.width + 4
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", type=Path, help="keep the data and the run in this folder")
    args = parser.parse_args()
    torch.set_num_threads(2)
    work = Path(tempfile.mkdtemp()) if args.keep is None else args.keep
    try:
        train, val = make_shapes_splits(work / "shapes", *LEARNING_IMAGES, seed=0, image_size=LEARNING_SIZE)
        model = learning_model()
        before = evaluate_coco(model, val.annotations, val.images, max_detections=20)
        shown = sorted(val.images.iterdir())[:SHOWN]
        top = _row(model, shown)
        start = time.perf_counter()
        result = model.fit(
            learning_data(train.annotations, train.images), (val.annotations, val.images), output_dir=work / "run",
            **{**LEARNING_OPTIONS, "val_every": VAL_EVERY},
        )
        seconds = time.perf_counter() - start
        bottom = _row(result.model, shown)
        grid = Image.new("RGB", (top.width, top.height + bottom.height + 4), (255, 255, 255))
        grid.paste(top, (0, 0))
        grid.paste(bottom, (0, top.height + 4))
        ASSETS.mkdir(parents=True, exist_ok=True)
        grid.save(ASSETS / "training_before_after.png", optimize=True)
        shutil.copy(work / "run" / "curves.png", ASSETS / "training_curves.png")
        print(f"before: mask AP50 {before.mask['AP50']:.3f}, box AP50 {before.box['AP50']:.3f}")
        assert result.validation is not None
        print(f"after {result.iteration} iterations ({seconds:.0f} s):")
        print(result.validation.table())
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
