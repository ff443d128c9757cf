"""``yolactpp train``: fine-tune a model on COCO-format data (see docs/training.md)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from yolactpp.cli._common import CliError, non_negative_int, positive_float, positive_int, resolve_device

NAME = "train"


def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions of the run like 0.35,0.75, got {text!r}") from None


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        NAME,
        help="fine-tune a model on your COCO-format data",
        description="Fine-tune a zoo model, checkpoint or model folder on a COCO instances dataset (or train from an "
        "ImageNet ResNet with --backbone-weights). Writes checkpoints (model folders that predict, eval, export "
        "and quantize take), metrics.jsonl, curves.png and the final model to OUTPUT/model.",
    )
    parser.add_argument("-m", "--model", required=True, help="starting weights: anything YolactPP.from_pretrained accepts "
                        "(with --backbone-weights: a model config name)")  # fmt: skip
    parser.add_argument("--config", metavar="NAME", help="model config name, when it cannot be inferred from the weights")
    data = parser.add_argument_group("data")
    data.add_argument("--train", type=Path, required=True, metavar="FILE", help="training annotations (COCO instances JSON)")
    data.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder the training file_name entries are in")
    data.add_argument("--val-annotations", type=Path, metavar="FILE", help="validation annotations (box and mask AP)")
    data.add_argument("--val-images", type=Path, metavar="DIR", help="folder of the validation images")
    data.add_argument("--skip-bad", action="store_true", help="skip (and count) malformed annotations instead of stopping")
    data.add_argument("--workers", type=non_negative_int, default=2, metavar="N", help="loader processes (default: 2)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="run folder, e.g. runs/NAME")
    run_group.add_argument("--iterations", type=positive_int, required=True, metavar="N", help="optimizer steps")
    run_group.add_argument("--batch-size", type=positive_int, default=8, metavar="N", help="images per step (default: 8)")
    run_group.add_argument("--resume", action="store_true", help="continue the run in OUTPUT from its last checkpoint")
    run_group.add_argument("--overwrite", action="store_true", help="replace a run already in OUTPUT")
    run_group.add_argument("--checkpoint-every", type=positive_int, default=1000, metavar="N", help="default: 1000")
    run_group.add_argument("--val-every", type=positive_int, metavar="N", help="validate every N iterations (default: at the end)")
    run_group.add_argument("--seed", type=non_negative_int, default=0, metavar="N", help="data order, augmentation, init")
    run_group.add_argument("--device", metavar="DEVICE", help="cpu, cuda, cuda:1 (default: cuda if available, else cpu)")
    run_group.add_argument("--precision", choices=("float32", "bfloat16", "float16"), default="float32",
                           help="autocast: bfloat16 on CPU or CUDA, float16 (AMP) on CUDA (default: float32)")  # fmt: skip
    run_group.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    opt = parser.add_argument_group("optimisation (defaults: the original's)")
    opt.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default: 1e-3)")
    opt.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (default: 0.9)")
    opt.add_argument("--weight-decay", type=float, default=5e-4, help="default: 5e-4")
    opt.add_argument("--warmup-iterations", type=non_negative_int, metavar="N",
                     help="linear warm-up from 1e-4 (default: 500, at most a tenth of the run)")  # fmt: skip
    opt.add_argument("--lr-steps", type=_fractions, metavar="F,F,...",
                     help="decay steps as fractions of the run (default: 0.35,0.75,0.875,0.9375)")  # fmt: skip
    opt.add_argument("--gamma", type=positive_float, default=0.1, help="decay factor per step (default: 0.1)")
    opt.add_argument("--grad-clip", type=positive_float, metavar="NORM", help="clip the gradient norm (default: off)")
    opt.add_argument("--image-size", type=positive_int, metavar="PX", help="train at this input size (anchors scale with it)")
    opt.add_argument("--trainable-batchnorm", action="store_true", help="train BatchNorm (default: frozen, as the original)")
    opt.add_argument("--backbone-weights", type=Path, metavar="FILE",
                     help="start from an ImageNet torchvision ResNet state dict instead of the model's weights")  # fmt: skip
    scaling = parser.add_argument_group(
        "scaling", "data-parallel training; under torchrun (torchrun --nproc-per-node N -m yolactpp train ...) every "
        "process trains its share of each batch without these options. --batch-size is per process."
    )
    scaling.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: this process (or this torchrun process); ray: Ray Train workers (default: local)")  # fmt: skip
    scaling.add_argument("--num-workers", type=positive_int, default=1, metavar="N",
                         help="Ray Train workers, one process each (not --workers, the data loader processes)")  # fmt: skip
    scaling.add_argument("--use-gpu", action="store_true", help="one GPU per Ray worker (NCCL); default: CPUs (gloo)")
    scaling.add_argument("--storage", metavar="PATH", help="where Ray Train keeps checkpoints: a folder or a URI such as "
                         "s3://bucket/runs (default: OUTPUT/ray)")  # fmt: skip
    scaling.add_argument("--max-failures", type=non_negative_int, default=3, metavar="N",
                         help="restarts from the last checkpoint after a lost Ray worker (default: 3)")  # fmt: skip
    parser.set_defaults(run=run)


def _start_model(args: argparse.Namespace) -> Any:
    from yolactpp.model import YolactPP
    from yolactpp.registry import get_model_config

    if args.backbone_weights is not None:
        return YolactPP(get_model_config(args.config or args.model))
    return YolactPP.from_pretrained(args.model, config=args.config)


def run(args: argparse.Namespace) -> int:
    from yolactpp.train.options import TrainOptions

    if (args.val_annotations is None) != (args.val_images is None):
        raise CliError("--val-annotations and --val-images go together")
    overrides: dict[str, Any] = {}
    if args.lr_steps is not None:
        overrides["lr_steps"] = args.lr_steps
    options = TrainOptions(
        output_dir=args.output,
        iterations=args.iterations,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        warmup_iterations=args.warmup_iterations,
        gamma=args.gamma,
        grad_clip=args.grad_clip,
        freeze_batchnorm=not args.trainable_batchnorm,
        precision=args.precision,
        device=str(resolve_device(args.device)),
        seed=args.seed,
        workers=args.workers,
        skip_bad=args.skip_bad,
        image_size=args.image_size,
        checkpoint_every=args.checkpoint_every,
        val_every=args.val_every,
        backbone_weights=args.backbone_weights,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.quiet,
        engine=args.engine,
        num_workers=args.num_workers,
        use_gpu=args.use_gpu,
        storage_path=args.storage,
        max_failures=args.max_failures,
        **overrides,
    )
    val = None if args.val_annotations is None else (args.val_annotations, args.val_images)
    model = _start_model(args)
    result = model.fit((args.train, args.images), val, options)
    if os.environ.get("RANK", "0") != "0":  # one report per torchrun launch
        return 0
    print(f"trained {result.iteration} iterations: model in {result.model_dir}")
    if result.validation is not None:
        print(result.validation.table())
    return 0
