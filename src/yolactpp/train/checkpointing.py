"""A run's output folder: checkpoints in the project's own format, the training state, the run record.

Layout of ``output_dir``::

    run.json                     options, status (running / stopped / failed / finished), iteration
    metrics.jsonl, curves.png    see :mod:`yolactpp.train.metrics`
    checkpoints/iter_0001000/    config.json + model.safetensors (``YolactPP.from_pretrained``,
                                 ``export`` and ``quantize`` take the folder as it is) and
                                 training_state.pt (optimizer, iteration, RNG, semantic head)
    model/                       the final model (config.json + model.safetensors)

A checkpoint is written under a temporary name and renamed when complete, so a crash never leaves
a half-written checkpoint for ``resume`` to pick up. Only files of these names are ever written
or, with ``overwrite``, removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from yolactpp.checkpoint import CheckpointError, LoadedWeights
from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, YolactppError
from yolactpp.serialization import read_pretrained_dir, write_pretrained

__all__ = ["TRAINING_STATE_NAME", "TRAJECTORY_OPTIONS", "Checkpoint", "OutputFolderError", "RunFolder"]

TRAINING_STATE_NAME = "training_state.pt"
#: Version of the training-state file's layout.
_STATE_FORMAT = 1
_CHECKPOINT = re.compile(r"^iter_(\d+)$")
#: Options that shape the loss trajectory: a resumed run must keep them.
TRAJECTORY_OPTIONS = (
    "iterations", "batch_size", "lr", "momentum", "weight_decay", "warmup_lr", "warmup_iterations", "lr_steps",
    "gamma", "grad_clip", "freeze_batchnorm", "precision", "seed", "image_size",
)  # fmt: skip


class OutputFolderError(YolactppError, FileExistsError):
    """The output folder holds a run (or files) that this run would overwrite, or nothing to resume."""


@dataclass(frozen=True)
class Checkpoint:
    """A saved checkpoint: its folder and the iteration (optimizer steps done) it holds."""

    path: Path
    iteration: int

    def weights(self) -> LoadedWeights:
        """The model weights (an own-format folder)."""
        return read_pretrained_dir(self.path)

    def training_state(self) -> dict[str, Any]:
        """The optimizer, RNG and semantic-head state saved with the weights (tensors only)."""
        path = self.path / TRAINING_STATE_NAME
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated or foreign files
            raise CheckpointError(f"{path} is not a readable training state: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            raise CheckpointError(f"{path} is not a yolactpp training state (format {_STATE_FORMAT})")
        return state


class RunFolder:
    """The files of one run in ``root``; see the module notes for the layout."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.record = self.root / "run.json"
        self.metrics = self.root / "metrics.jsonl"
        self.curves = self.root / "curves.png"
        self.checkpoints = self.root / "checkpoints"
        self.model = self.root / "model"

    def _owned(self) -> tuple[Path, ...]:
        return (self.record, self.metrics, self.curves, self.checkpoints, self.model)

    def read_record(self) -> dict[str, Any] | None:
        if not self.record.is_file():
            return None
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise OutputFolderError(f"{self.record} is not valid JSON ({exc.msg}); is this a yolactpp run folder?") from None
        return data if isinstance(data, dict) else None

    def write_record(self, status: str, iteration: int, options: Mapping[str, Any], **extra: Any) -> None:
        data = {"status": status, "iteration": iteration, "options": dict(options), **extra}
        tmp = self.record.with_name(".run.json.partial")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.record)

    def prepare(self, options: Mapping[str, Any], *, resume: bool, overwrite: bool) -> Checkpoint | None:
        """Make the folder ready for a run; return the checkpoint to resume from (``None``: start fresh).

        A folder holding a run is refused unless ``resume`` (continue from its last checkpoint,
        with the same :data:`TRAJECTORY_OPTIONS` as ``options``, the run's JSON-ready options) or
        ``overwrite`` (remove that run's files, and nothing else, first).
        """
        if self.root.exists() and not self.root.is_dir():
            raise OutputFolderError(f"output folder {self.root} is a file")
        record = self.read_record()
        if resume:
            if record is None:
                raise OutputFolderError(f"nothing to resume: {self.root} holds no run (no run.json)")
            stored = record.get("options", {})
            changed = [k for k in TRAJECTORY_OPTIONS if k in stored and stored[k] != options.get(k)]
            if changed:
                raise OutputFolderError(
                    f"resume the run in {self.root} with its own options: "
                    + ", ".join(f"{k} was {stored[k]!r}, now {options.get(k)!r}" for k in changed)
                )
            if record.get("status") == "finished":
                raise OutputFolderError(
                    f"the run in {self.root} finished at iteration {record.get('iteration')}; nothing to resume "
                    "(pass overwrite to train again there, or choose another output folder)"
                )
            latest = self.latest_checkpoint()
            if latest is None:
                raise OutputFolderError(f"nothing to resume: {self.root} holds no checkpoint yet")
            return latest
        present = [p for p in self._owned() if p.exists()]
        if present and not overwrite:
            if record is not None:
                raise OutputFolderError(
                    f"output folder {self.root} holds a {record.get('status', 'previous')} run (iteration "
                    f"{record.get('iteration')}); pass overwrite (--overwrite) to replace it or resume (--resume) "
                    "to continue it"
                )
            raise OutputFolderError(
                f"output folder {self.root} already has {', '.join(p.name for p in present)}; choose an empty folder "
                "or pass overwrite (--overwrite)"
            )
        for path in present:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        return None

    def latest_checkpoint(self) -> Checkpoint | None:
        """The complete checkpoint with the highest iteration, if any."""
        found = []
        if self.checkpoints.is_dir():
            for child in self.checkpoints.iterdir():
                match = _CHECKPOINT.match(child.name)
                if match and (child / TRAINING_STATE_NAME).is_file():
                    found.append(Checkpoint(child, int(match.group(1))))
        return max(found, key=lambda c: c.iteration, default=None)

    def save_checkpoint(
        self,
        iteration: int,
        config: ModelConfig,
        network_state: Mapping[str, torch.Tensor],
        training_state: Mapping[str, Any],
        provenance: Mapping[str, Any] | None = None,
    ) -> Checkpoint:
        """Write ``checkpoints/iter_<iteration>`` (model folder + training state), atomically."""
        if iteration < 0:
            raise InvalidArgumentError(f"iteration must be >= 0, got {iteration}")
        final = self.checkpoints / f"iter_{iteration:07d}"
        partial = self.checkpoints / f".iter_{iteration:07d}.partial"
        if partial.exists():
            shutil.rmtree(partial)
        write_pretrained(partial, config, network_state, provenance={"iteration": iteration, **(provenance or {})})
        torch.save({"format": _STATE_FORMAT, "iteration": iteration, **training_state}, partial / TRAINING_STATE_NAME)
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        return Checkpoint(final, iteration)

    def save_model(self, config: ModelConfig, network_state: Mapping[str, torch.Tensor], provenance: Mapping[str, Any]) -> Path:
        """Write the final model folder."""
        return write_pretrained(self.model, config, network_state, provenance=provenance)
