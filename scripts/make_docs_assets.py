"""Regenerate docs/assets/quickstart_plot.png: a ``Detections.plot()`` picture for the quickstart.

Without network access to the released weights this uses the test suite's deterministic synthetic
checkpoint, so the picture shows what the drawing looks like, not what the real models find.
Run from the repository root: ``python scripts/make_docs_assets.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from tests.oracle.checkpoints import write_checkpoint  # noqa: E402
from yolactpp import YolactPP  # noqa: E402

OUTPUT = ROOT / "docs" / "assets" / "quickstart_plot.png"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        model = YolactPP.from_pretrained(write_checkpoint("yolact_resnet50", Path(tmp), 0))
    image = Image.open(ROOT / "tests" / "data" / "oracle" / "images" / "square_550x550.png").convert("RGB")
    image = image.resize((400, 400), Image.BILINEAR)
    det = model.predict(image).filter(min_score=0.96)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    det.plot().quantize(colors=256).save(OUTPUT, optimize=True)  # a palette PNG keeps the repository small
    print(f"wrote {OUTPUT} ({len(det)} detections: {', '.join(sorted(set(det.class_names)))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
