"""`make demo`: load YOLACT++ R50, segment an image, print the detections, save a picture.

The weights come from the Hugging Face hub (dbolya/yolact-plus-resnet50). Where the hub cannot be
reached (an offline machine), the demo says so and falls back to the deterministic synthetic
checkpoint the test suite uses, so the whole pipeline still runs; its detections are meaningless.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "tests/data/oracle/images/square_550x550.png"
MODEL = "yolact_plus_resnet50"


def load_model():
    from yolactpp import YolactPP
    from yolactpp.hub import HubDownloadError

    try:
        return YolactPP.from_pretrained(MODEL), f"{MODEL} (released weights)"
    except HubDownloadError as exc:
        print(f"note: {str(exc).splitlines()[0]}")
        print("note: falling back to synthetic weights (tests/oracle); the detections below are meaningless")
        sys.path.insert(0, str(REPO))
        from tests.oracle.checkpoints import write_checkpoint

        path = write_checkpoint(MODEL, REPO / "runs" / "demo-weights")
        return YolactPP.from_pretrained(path), f"{MODEL} (synthetic weights: {path.relative_to(REPO)})"


def main() -> None:
    import torch

    from yolactpp import ops

    image = Path(sys.argv[1]) if len(sys.argv) > 1 else IMAGE
    model, source = load_model()
    print(f"model: {source}")
    print("ops:   " + "; ".join(f"{i.op}/{i.device} -> {i.backend}" for i in ops.backend_info()))
    model.predict(image)  # warm-up
    start = time.perf_counter()
    det = model.predict(image, score_threshold=0.15)
    masks = det.masks
    elapsed = (time.perf_counter() - start) * 1000
    print(f"{image.name}: {len(det)} detections with score > 0.15 in {elapsed:.0f} ms "
          f"({torch.get_num_threads()} threads, float32); masks {tuple(masks.shape)}")
    for row in det.summary(decimals=2)[:10]:
        print(f"  {row['class_name']:<14} score {row['score']:.2f}  box {row['box']}")
    out = REPO / "runs" / "demo" / f"{image.stem}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    det.plot().save(out)
    print(f"annotated image: {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
