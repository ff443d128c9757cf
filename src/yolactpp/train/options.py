"""``TrainOptions``: how a fine-tuning run is done, checked when built (the training ``PredictOptions``).

``YolactPP.fit``, :class:`~yolactpp.train.trainer.Trainer` and ``yolactpp train`` take one frozen
object; keyword arguments are a convenience that builds one. Defaults follow the original's
``train.py`` and ``data/config.py`` (SGD, lr 1e-3, momentum 0.9, weight decay 5e-4, warm-up from
1e-4 over 500 iterations, step decay x0.1), with the decay steps given as fractions of the run so
that they scale to the user's iteration count. Imports no torch.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yolactpp.predict_options import InvalidOptionError, OptionsBuilder, _integer, _real

__all__ = ["ORIGINAL_LR_STEPS", "TrainOptions"]

#: The released models' decay steps (280k, 600k, 700k, 750k of 800k iterations) as fractions.
ORIGINAL_LR_STEPS = (280_000 / 800_000, 600_000 / 800_000, 700_000 / 800_000, 750_000 / 800_000)
#: The original warm-up length, in iterations; :attr:`TrainOptions.warmup_iterations` caps it.
_ORIGINAL_WARMUP = 500

Precision = Literal["float32", "bfloat16", "float16"]
_PRECISIONS = ("float32", "bfloat16", "float16")
Engine = Literal["local", "ray"]
_ENGINES = ("local", "ray")


def _positive(name: str, value: Any, *, minimum: int = 1) -> int:
    number = _integer(name, value)
    if number < minimum:
        raise InvalidOptionError(f"{name} must be >= {minimum}, got {number}")
    return number


def _positive_real(name: str, value: Any, *, allow_zero: bool = False) -> float:
    number = _real(name, value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise InvalidOptionError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return number


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be True or False, got {value!r}")
    return value


def _steps(value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidOptionError(f"lr_steps must be a list of fractions of the run, got {value!r}")
    steps = tuple(_real("lr_steps", v) for v in value)
    if any(not 0.0 < s < 1.0 for s in steps):
        raise InvalidOptionError(f"lr_steps are fractions of the run and must lie in (0, 1), got {list(steps)}")
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise InvalidOptionError(f"lr_steps must increase, got {list(steps)}")
    return steps


@dataclass(frozen=True)
class TrainOptions(OptionsBuilder):
    """A fine-tuning run; every field is checked when the object is built.

    Optimisation: ``iterations`` SGD steps of ``batch_size`` images, ``lr``, ``momentum``,
    ``weight_decay``; the learning rate rises linearly from ``warmup_lr`` to ``lr`` over
    ``warmup_iterations`` (``None``: the original's 500, at most a tenth of the run) and is multiplied
    by ``gamma`` at each of ``lr_steps`` (fractions of ``iterations``). ``grad_clip`` caps the
    gradients' global L2 norm (``None``: no clipping, as the original). ``freeze_batchnorm`` keeps
    every BatchNorm in inference mode with frozen parameters, as the original does at the batch
    sizes that fit one GPU; turn it off only to train a backbone from scratch.

    Precision: ``precision="bfloat16"`` runs forward and loss under bf16 autocast (CPU or CUDA),
    ``"float16"`` uses CUDA AMP with a gradient scaler; weights and the optimizer stay float32.

    Data: ``workers`` loader processes (0: in the main process), ``seed`` for the data order,
    augmentations and the loss's random choices; ``skip_bad`` counts and skips malformed
    annotations instead of stopping. ``image_size`` changes the network's input size (``None``:
    the model's).

    Outputs (in ``output_dir``): a checkpoint every ``checkpoint_every`` iterations and at the end,
    validation AP every ``val_every`` iterations (``None``: at the end only; needs validation data),
    a metrics line every ``log_every`` iterations. ``resume`` continues the run in ``output_dir``
    from its last checkpoint; ``overwrite`` replaces a finished or stopped run there.
    ``backbone_weights`` (a torchvision ResNet state dict file) re-initialises the whole network
    with an ImageNet backbone instead of fine-tuning the model's own weights.

    Scaling (docs/training.md, "Distributed training"): ``engine="local"`` trains in this process,
    or data-parallel in each process of a ``torchrun`` launch; ``engine="ray"`` runs
    ``num_workers`` Ray Train workers (DDP; ``use_gpu``: one GPU each, NCCL), copying every
    checkpoint to ``storage_path`` (a folder or a pyarrow filesystem URI; ``None``: ``output_dir/ray``)
    and restarting from the last one up to ``max_failures`` times when a worker is lost. In every
    data-parallel run ``batch_size`` is per process: a step sees ``batch_size x processes`` images.
    """

    _KIND = "training"

    output_dir: str | os.PathLike[str] = "runs/train"
    iterations: int = 1000
    batch_size: int = 8
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_lr: float = 1e-4
    warmup_iterations: int | None = None
    lr_steps: tuple[float, ...] = ORIGINAL_LR_STEPS
    gamma: float = 0.1
    grad_clip: float | None = None
    freeze_batchnorm: bool = True
    precision: Precision = "float32"
    device: str | None = None
    seed: int = 0
    workers: int = 2
    skip_bad: bool = False
    image_size: int | None = None
    checkpoint_every: int = 1000
    val_every: int | None = None
    log_every: int = 1
    backbone_weights: str | os.PathLike[str] | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    engine: Engine = "local"
    num_workers: int = 1
    use_gpu: bool = False
    storage_path: str | os.PathLike[str] | None = None
    max_failures: int = 3

    def __post_init__(self) -> None:
        values: dict[str, Any] = {
            "output_dir": Path(self.output_dir),
            "iterations": _positive("iterations", self.iterations),
            "batch_size": _positive("batch_size", self.batch_size),
            "lr": _positive_real("lr", self.lr),
            "momentum": _positive_real("momentum", self.momentum, allow_zero=True),
            "weight_decay": _positive_real("weight_decay", self.weight_decay, allow_zero=True),
            "warmup_lr": _positive_real("warmup_lr", self.warmup_lr, allow_zero=True),
            "lr_steps": _steps(self.lr_steps),
            "gamma": _positive_real("gamma", self.gamma),
            "seed": _positive("seed", self.seed, minimum=0),
            "workers": _positive("workers", self.workers, minimum=0),
            "checkpoint_every": _positive("checkpoint_every", self.checkpoint_every),
            "log_every": _positive("log_every", self.log_every),
            "num_workers": _positive("num_workers", self.num_workers),
            "max_failures": _positive("max_failures", self.max_failures, minimum=0),
        }
        if values["momentum"] >= 1:
            raise InvalidOptionError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for name in ("warmup_iterations",):
            if getattr(self, name) is not None:
                values[name] = _positive(name, getattr(self, name), minimum=0)
        for name in ("val_every", "image_size"):
            if getattr(self, name) is not None:
                values[name] = _positive(name, getattr(self, name))
        if self.grad_clip is not None:
            values["grad_clip"] = _positive_real("grad_clip", self.grad_clip)
        if self.backbone_weights is not None:
            values["backbone_weights"] = Path(self.backbone_weights)
        for name in ("freeze_batchnorm", "skip_bad", "resume", "overwrite", "progress", "use_gpu"):
            _flag(name, getattr(self, name))
        if self.resume and self.overwrite:
            raise InvalidOptionError("resume and overwrite exclude each other: resume continues the run, overwrite replaces it")
        if self.precision not in _PRECISIONS:
            raise InvalidOptionError(f"precision must be one of {list(_PRECISIONS)}, got {self.precision!r}")
        if self.engine not in _ENGINES:
            raise InvalidOptionError(f"engine must be one of {list(_ENGINES)}, got {self.engine!r}")
        if self.engine == "local":
            ray_only = [n for n, default in (("num_workers", 1), ("use_gpu", False), ("storage_path", None))
                        if getattr(self, n) != default]  # fmt: skip
            if ray_only:
                raise InvalidOptionError(
                    f"{', '.join(ray_only)} {'applies' if len(ray_only) == 1 else 'apply'} to engine='ray' only (for several local processes launch "
                    "with torchrun; for a GPU set device)"
                )
        if self.storage_path is not None:
            if not isinstance(self.storage_path, (str, os.PathLike)) or not str(self.storage_path):
                raise InvalidOptionError(f"storage_path must be a folder or a URI, got {self.storage_path!r}")
            values["storage_path"] = str(self.storage_path)
        if self.device is not None and (not isinstance(self.device, str) or not self.device):
            raise InvalidOptionError(f"device must be a device name such as 'cpu' or 'cuda:0', got {self.device!r}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def warmup(self) -> int:
        """Warm-up iterations in effect: the given count, else the original's 500 capped at a tenth of the run."""
        if self.warmup_iterations is not None:
            return self.warmup_iterations
        return min(_ORIGINAL_WARMUP, self.iterations // 10)

    @property
    def step_iterations(self) -> tuple[int, ...]:
        """The iterations at which the learning rate is multiplied by ``gamma``."""
        return tuple(max(1, round(s * self.iterations)) for s in self.lr_steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings), stored with every checkpoint."""
        data = dataclasses.asdict(self)
        for name in ("output_dir", "backbone_weights"):
            if data[name] is not None:
                data[name] = str(data[name])
        data["lr_steps"] = list(self.lr_steps)
        return data
