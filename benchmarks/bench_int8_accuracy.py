"""int8 accuracy on a trained model: mask / box AP50 of float32 and int8 (8- and 7-bit weights) on
held-out generated shapes, for the learning test's model (tests/train/test_learning.py: the tiny
YOLACT trained from scratch, 96 px, 800 iterations of 8 on 600 images; scored on --held-out generated images, 200 by default).

    python benchmarks/bench_int8_accuracy.py [--seed 0] [--calibration 16] [--model-dir runs/x/model] [--plus]

``--plus`` trains a tiny YOLACT++ instead: the same backbone with DCNs in its C3 and C4 stages
and a 3-layer mask re-scoring net, so that the DCN's and the re-scoring net's quantization are measured too.

``--model-dir`` scores an already trained model (its folder, as ``fit`` saves it) on a split of
``--seed`` instead of training one (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import markdown_table

TINY_DCN_BACKBONE = "bench_tiny_dcn"


def register_tiny_dcn() -> None:
    """The tests' tiny backbone with each C3 / C4 stage's second convolution deformable."""
    from torch import nn

    from tests.train.tiny import TinyBackbone
    from yolactpp.backbone.dcn import ModulatedDeformConv2d
    from yolactpp.registry import register_backbone

    def build(cfg: object) -> TinyBackbone:
        backbone = TinyBackbone()
        for stage in (backbone.stages[1], backbone.stages[2]):
            conv = stage[3]
            assert isinstance(conv, nn.Conv2d)
            stage[3] = ModulatedDeformConv2d(conv.in_channels, conv.out_channels, 3, padding=1)
        return backbone

    register_backbone(TINY_DCN_BACKBONE, overwrite=True)(build)


def plus_model() -> object:
    """The learning model's YOLACT++ twin (DCN backbone, re-scoring net), same seeds."""
    import dataclasses

    import torch

    from tests.train.tiny import LEARNING_ANCHOR_SCALES, LEARNING_SIZE, tiny_config
    from yolactpp import YolactPP
    from yolactpp.config import BackboneConfig
    from yolactpp.train.initialize import fresh_network
    from yolactpp.train.shapes import SHAPE_CLASSES

    register_tiny_dcn()
    config = dataclasses.replace(
        tiny_config(LEARNING_SIZE, SHAPE_CLASSES, "tiny_shapes_plus", LEARNING_ANCHOR_SCALES),
        backbone=BackboneConfig(TINY_DCN_BACKBONE),
        maskiou_channels=(8, 16, 32),
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return YolactPP(config, network=fresh_network(config, torch.Generator().manual_seed(0)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="data seed of the generated split")
    parser.add_argument("--calibration", type=int, default=16, help="training images to calibrate on")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--plus", action="store_true", help="a tiny YOLACT++ (DCN, re-scoring net) instead")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--held-out", type=int, default=200, help="held-out images to score on (the learning test's 50 and more)")
    args = parser.parse_args(argv)

    import torch

    from tests.train.tiny import (
        LEARNING_IMAGES,
        LEARNING_OPTIONS,
        LEARNING_SIZE,
        learning_data,
        learning_model,
        register_tiny,
    )
    from yolactpp import YolactPP
    from yolactpp.evaluate import evaluate_coco
    from yolactpp.quantize import SlowInt8Warning, calibration_images, int8_support
    from yolactpp.train.shapes import make_shapes_splits

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="yolactpp-int8-accuracy-"))
    train, val = make_shapes_splits(root / "shapes", LEARNING_IMAGES[0], args.held_out, seed=args.seed, image_size=LEARNING_SIZE)
    if args.model_dir:
        register_tiny()
        register_tiny_dcn()
        model = YolactPP.from_pretrained(args.model_dir)
    else:
        start = time.perf_counter()
        untrained = plus_model() if args.plus else learning_model()
        result = untrained.fit(  # type: ignore[attr-defined]
            learning_data(train.annotations, train.images), None, output_dir=root / "run", **LEARNING_OPTIONS
        )
        model = result.model
        print(f"# trained in {time.perf_counter() - start:.0f} s: {result.model_dir}", file=sys.stderr)
    print(f"# {model.config.name}, seed {args.seed}, {args.held_out} held-out images, calibration on {args.calibration} training images; "
          f"{int8_support().describe()}")  # fmt: skip
    rows = []
    reference = evaluate_coco(model, val.annotations, val.images)
    rows.append(["float32 (eager)", f"{reference.mask['AP50']:.4f}", f"{reference.box['AP50']:.4f}", "-", "-"])
    for bits in (8, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowInt8Warning)
            quantized = model.quantize(
                calibration_images(train.images, args.calibration), progress=False, weight_bits=bits,
                path=root / f"int8-{bits}.onnx", threads=args.threads,
            )  # fmt: skip
        got = evaluate_coco(quantized, val.annotations, val.images)
        rows.append([
            f"int8, {bits}-bit weights", f"{got.mask['AP50']:.4f}", f"{got.box['AP50']:.4f}",
            f"{100 * (got.mask['AP50'] - reference.mask['AP50']):+.2f}", f"{100 * (got.box['AP50'] - reference.box['AP50']):+.2f}",
        ])  # fmt: skip
    print(markdown_table(rows, ["model", "mask AP50", "box AP50", "mask AP50 change (points)", "box AP50 change (points)"]))


if __name__ == "__main__":
    main()
