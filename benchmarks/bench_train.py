"""Seconds per training iteration: YOLACT++ / YOLACT against torchvision's Mask R-CNN, one run.

One iteration = forward (network + the training-only semantic-segmentation 1x1 conv on P3), loss,
backward, SGD step (momentum 0.9, weight decay 5e-4), on a batch of two 550x550 images with five
box+mask objects each; BatchNorm frozen (eval statistics, no gradients), as the original trains.
Rows, timed round-robin rep by rep so they share whatever load the machine has (medians):

- ``yolact_plus_resnet50`` with the native DCN backward, and (``--fallback``) with torchvision's
  deform_conv2d (``ops.set_backend("fallback")``: the cost before the native backward);
- ``yolact_resnet50`` (no DCN);
- torchvision ``maskrcnn_resnet50_fpn`` (v1, ``weights=None``, min/max size 550, train mode;
  its forward returns the losses, so "forward" includes its loss).

Per precision: float32 (NCHW), and bfloat16 autocast (forward and loss under
``torch.autocast("cpu", torch.bfloat16)``, channels_last models and images, for every row).
The loss is ``yolactpp.train.loss.compute_losses`` (the original's MultiBoxLoss terms) when that
module exists, else a stand-in (mean squares of the raw outputs), labelled as such in the table.
The DCN share is the deformable convolutions' backward kernels' CPU time over the backward's
wall time, from one profiled iteration per row.

Run: ``PYTHONPATH=src python benchmarks/bench_train.py [--reps 3] [--threads 2] [--no-fallback]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
import torchvision
from torch import nn

from yolactpp import ops
from yolactpp.network import RawOutput, YolactNetwork
from yolactpp.registry import get_model_config
from yolactpp.train.targets import ImageTargets

PHASES = ("forward", "loss", "backward", "optimizer")
#: Profiler event names of the deformable convolutions' backward kernels (native, torchvision).
DCN_BACKWARD_EVENTS = ("yolactpp::deform_conv2d_backward", "torchvision::_deform_conv2d_backward")

LossFn = Callable[[nn.Module, RawOutput, torch.Tensor, list[ImageTargets]], torch.Tensor]


def stand_in_loss(network: nn.Module, raw: RawOutput, segmentation: torch.Tensor,
                  targets: list[ImageTargets]) -> torch.Tensor:
    """Not the training loss: mean squares of every raw output, so that every head gets a gradient."""
    terms = [raw.loc, raw.conf_logits, raw.coefficients, raw.proto, segmentation]
    return sum((t.float().square().mean() for t in terms), torch.zeros(()))


def pick_loss() -> tuple[str, LossFn]:
    """The real loss when the training losses exist in this checkout, else the stand-in."""
    try:
        from yolactpp.train.loss import compute_losses
        from yolactpp.train.loss_config import LossConfig
    except ImportError:
        return "STAND-IN (mean squares of the outputs; yolactpp.train.loss not available)", stand_in_loss

    def real_loss(network: nn.Module, raw: RawOutput, segmentation: torch.Tensor,
                  targets: list[ImageTargets]) -> torch.Tensor:
        config = LossConfig.for_model(network.config)  # type: ignore[arg-type]
        losses = compute_losses(raw, segmentation, targets, network.maskiou_net, config)  # type: ignore[arg-type]
        return losses["total"]

    return "compute_losses (the original's MultiBoxLoss terms)", real_loss


def freeze_batchnorm(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


def make_batch(size: int, objects: int, num_classes: int, seed: int = 0) -> tuple[torch.Tensor, list[ImageTargets]]:
    """Two normalized-looking images and rectangular objects (boxes as fractions, filled masks)."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 3, size, size, generator=gen)
    targets = []
    for _ in range(2):
        corner = torch.rand(objects, 2, generator=gen) * 0.6
        extent = torch.rand(objects, 2, generator=gen) * 0.3 + 0.08
        boxes = torch.cat([corner, corner + extent], dim=1)
        masks = torch.zeros(objects, size, size)
        for k, (x1, y1, x2, y2) in enumerate((boxes * size).round().long().tolist()):
            masks[k, y1:y2, x1:x2] = 1
        labels = torch.randint(num_classes, (objects,), generator=gen)
        targets.append(ImageTargets(boxes, labels, masks))
    return images, targets


class YolactStep:
    """One training iteration of a YOLACT network, timed by phase."""

    def __init__(self, name: str, images: torch.Tensor, targets: list[ImageTargets], loss: LossFn,
                 bf16: bool, backend: str) -> None:
        torch.manual_seed(0)
        config = get_model_config(name)
        self.network = YolactNetwork(config)
        for m in self.network.modules():  # fractional offsets, as in a trained model (zero at init)
            if hasattr(m, "conv_offset_mask"):
                nn.init.normal_(m.conv_offset_mask.weight, std=0.01)
        self.segmentation = nn.Conv2d(config.fpn_channels, config.num_classes, 1)
        self.network.train()
        freeze_batchnorm(self.network)
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        self.network.to(memory_format=fmt)
        self.segmentation.to(memory_format=fmt)
        self.images = images.contiguous(memory_format=fmt)
        self.targets, self.loss, self.bf16, self.backend = targets, loss, bf16, backend
        params = [p for p in [*self.network.parameters(), *self.segmentation.parameters()] if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)

    def _autocast(self) -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def _total(self) -> torch.Tensor:
        raw = self.network.forward_raw(self.images)
        return self.loss(self.network, raw, self.segmentation(raw.fpn[0]), self.targets)

    def __call__(self) -> dict[str, float]:
        with ops.use_backend(self.backend):
            t0 = time.perf_counter()
            with self._autocast():
                raw = self.network.forward_raw(self.images)
                segmentation = self.segmentation(raw.fpn[0])
            t1 = time.perf_counter()
            with self._autocast():
                total = self.loss(self.network, raw, segmentation, self.targets)
            t2 = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            t3 = time.perf_counter()
            self.optimizer.step()
            t4 = time.perf_counter()
        return dict(forward=t1 - t0, loss=t2 - t1, backward=t3 - t2, optimizer=t4 - t3)

    def backward_only(self) -> None:
        with ops.use_backend(self.backend):
            with self._autocast():
                total = self._total()
            self.optimizer.zero_grad(set_to_none=True)
            with profiled() as prof:
                total.backward()
        self.profile = prof


class MaskRCNNStep:
    """One training iteration of torchvision's Mask R-CNN (its forward computes the losses)."""

    def __init__(self, images: torch.Tensor, targets: list[ImageTargets], bf16: bool) -> None:
        from torchvision.models.detection import maskrcnn_resnet50_fpn

        torch.manual_seed(0)
        size = images.shape[-1]
        self.model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, min_size=size, max_size=size)
        self.model.train()
        fmt = torch.channels_last if bf16 else torch.contiguous_format
        self.model.to(memory_format=fmt)
        # Mask R-CNN normalizes (and batches) inside; give it [0, 1] images of the same content.
        self.images = [(img - img.min()) / (img.max() - img.min()) for img in images]
        self.targets = [
            dict(boxes=t.boxes * size, labels=t.labels + 1, masks=t.masks.to(torch.uint8)) for t in targets
        ]
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)
        self.bf16 = bf16

    def __call__(self) -> dict[str, float]:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext():
            losses = self.model(self.images, self.targets)
            total = sum(losses.values())
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        return dict(forward=t1 - t0, loss=float("nan"), backward=t2 - t1, optimizer=t3 - t2)


@contextmanager
def profiled() -> Iterator[torch.profiler.profile]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        yield prof
    prof.wall = time.perf_counter() - start  # type: ignore[attr-defined]


def dcn_share(step: YolactStep) -> str:
    """The DCN backward kernels' share of one profiled backward (CPU time of the op events)."""
    step.backward_only()
    prof = step.profile
    dcn_us = sum(e.cpu_time_total for e in prof.key_averages() if e.key in DCN_BACKWARD_EVENTS)
    return f"{100 * dcn_us / 1e6 / prof.wall:.0f} %"  # type: ignore[attr-defined]


def run(reps: int, with_fallback: bool, size: int) -> None:
    loss_label, loss = pick_loss()
    print(f"# loss: {loss_label}")
    num_classes = get_model_config("yolact_plus_resnet50").num_classes
    images, targets = make_batch(size, 5, num_classes)
    rows: list[tuple[str, str, Callable[[], dict[str, float]], YolactStep | None]] = []
    for precision, bf16 in (("fp32", False), ("bf16 autocast", True)):
        plus = YolactStep("yolact_plus_resnet50", images, targets, loss, bf16, "native")
        rows.append(("yolact_plus_resnet50 (native DCN)", precision, plus, plus))
        if with_fallback:
            tv = YolactStep("yolact_plus_resnet50", images, targets, loss, bf16, "fallback")
            rows.append(("yolact_plus_resnet50 (torchvision DCN)", precision, tv, tv))
        rows.append(("yolact_resnet50", precision, YolactStep("yolact_resnet50", images, targets, loss, bf16, "native"),
                     None))
        rows.append(("maskrcnn_resnet50_fpn", precision, MaskRCNNStep(images, targets, bf16), None))

    for _, _, step, _ in rows:  # warm-up
        step()
    times: dict[int, list[dict[str, float]]] = {i: [] for i in range(len(rows))}
    for _ in range(reps):
        for i, (_, _, step, _) in enumerate(rows):
            times[i].append(step())

    print("\n| model | precision | s / iteration | forward | loss | backward | optimizer | DCN share of backward "
          "| Mask R-CNN / this |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    totals = {i: statistics.median(sum(v for v in t.values() if v == v) for t in ts) for i, ts in times.items()}
    for i, (label, precision, _, yolact) in enumerate(rows):
        phases = {p: statistics.median(t[p] for t in times[i]) for p in PHASES}
        mask_rcnn = next(j for j, r in enumerate(rows) if r[1] == precision and r[0].startswith("maskrcnn"))
        share = dcn_share(yolact) if yolact is not None and "plus" in label else "-"
        cells = [f"{phases[p]:.2f}" if phases[p] == phases[p] else "(in forward)" for p in PHASES]
        print(f"| {label} | {precision} | {totals[i]:.2f} | {' | '.join(cells)} | {share} | "
              f"{totals[mask_rcnn] / totals[i]:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3, help="timed iterations per row (median), after one warm-up")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--size", type=int, default=550, help="image side (a smaller one for a quick smoke run)")
    parser.add_argument("--no-fallback", action="store_true", help="leave out the torchvision-DCN YOLACT++ rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, {args.threads} threads, "
          f"median of {args.reps} interleaved iterations after one warm-up; batch 2 x {args.size}x{args.size}, 5 objects per image")
    for info in ops.backend_info():
        if info.op == "deform_conv2d" and info.device == "cpu":
            print(f"# deform_conv2d on cpu: {info.backend}")
    run(args.reps, not args.no_fallback, args.size)


if __name__ == "__main__":
    main()
