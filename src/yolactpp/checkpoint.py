"""Reading the original YOLACT release checkpoints (``<config>_<epoch>_<iteration>.pth``).

Files are read with ``torch.load(weights_only=True)``: only tensors are ever unpickled. The
original loader's key rules are applied (legacy ``backbone.layer*`` names and surplus FPN
downsample layers are dropped); the training-only semantic segmentation conv and BatchNorm
``num_batches_tracked`` counters are ignored. Anything else that does not match the model raises
one :class:`CheckpointError` naming the keys and the likely cause.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from yolactpp.errors import MissingFileError, YolactppError

__all__ = [
    "CheckpointError",
    "config_name_from_filename",
    "load_state_dict_strict",
    "original_to_canonical",
    "read_original_checkpoint",
]

_ORIGINAL_NAME = re.compile(r"^(?P<config>.+)_(?P<epoch>\d+)_(?P<iteration>\d+)\.pth$")
_LEGACY_BACKBONE = re.compile(r"^backbone\.layer(?!s\.)")
_FPN_DOWNSAMPLE = re.compile(r"^fpn\.downsample_layers\.(\d+)\.")
_TRAINING_ONLY = ("semantic_seg_conv.",)


class CheckpointError(YolactppError, ValueError):
    """A weights file that cannot be read, or that does not fit the model it is loaded into."""


def config_name_from_filename(path: str | os.PathLike[str]) -> str | None:
    """The config name the original infers from a weights file name, e.g.
    ``yolact_plus_base_54_800000.pth`` -> ``yolact_plus_base``; ``None`` if the name does not fit."""
    match = _ORIGINAL_NAME.match(Path(path).name)
    return match.group("config") if match else None


def _unsafe_detail(message: str) -> str:
    """torch's line naming the global a pickle wanted (``Unsupported global: GLOBAL posix.system``),
    which is what code-running pickles need; ``""`` when there is none (garbage, not a pickle)."""
    for line in message.splitlines():
        if "GLOBAL" in line:
            return f"Refused: {line.strip()}"
    return ""


def read_original_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a ``.pth`` state dict safely (tensors only) onto the CPU."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(f"checkpoint file not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any parse failure of an untrusted file means "not loadable"
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        refused = _unsafe_detail(str(exc))
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc) and refused:
            raise CheckpointError(
                f"refusing to load {p}: it contains Python objects other than tensors, which could run "
                f"code when unpickled (only weights_only loading is allowed). {refused}"
            ) from None
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            first_line = "invalid pickle data"  # torch's text would suggest weights_only=False: never
        raise CheckpointError(
            f"{p} is not a readable PyTorch checkpoint (truncated or corrupted download, or not a "
            f".pth file): {first_line}"
        ) from None
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise CheckpointError(
            f"{p} does not hold a plain state dict (name -> tensor) like the original release files; "
            f"got {type(obj).__name__}"
        )
    return dict(obj)


def original_to_canonical(state: Mapping[str, torch.Tensor], num_downsample: int = 2) -> dict[str, torch.Tensor]:
    """Apply the original loader's key rules and drop what inference never uses."""
    out = {}
    for name, tensor in state.items():
        if _LEGACY_BACKBONE.match(name) or name.startswith(_TRAINING_ONLY) or name.endswith(".num_batches_tracked"):
            continue
        m = _FPN_DOWNSAMPLE.match(name)
        if m and int(m.group(1)) >= num_downsample:
            continue
        out[name] = tensor
    return out


def _likely_cause(model_state: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    hints = []
    conf_key = "prediction_layers.0.conf_layer.weight"
    if conf_key in model_state and conf_key in state:
        ours, theirs = model_state[conf_key].shape[0], state[conf_key].shape[0]
        if ours != theirs:
            anchors_ours = model_state["prediction_layers.0.bbox_layer.weight"].shape[0] // 4
            bbox = state.get("prediction_layers.0.bbox_layer.weight")
            anchors_theirs = bbox.shape[0] // 4 if bbox is not None else anchors_ours
            if anchors_ours == anchors_theirs:
                hints.append(
                    f"the checkpoint predicts {theirs // anchors_theirs - 1} classes but the config has "
                    f"{ours // anchors_ours - 1} (pass a config with matching class_names)"
                )
            else:
                hints.append(
                    f"the checkpoint has {anchors_theirs} anchors per location, the config {anchors_ours} "
                    "(YOLACT++ checkpoints have 9, YOLACT ones 3)"
                )
    has_dcn = any(".conv_offset_mask." in k for k in state)
    wants_dcn = any(".conv_offset_mask." in k for k in model_state)
    if has_dcn != wants_dcn:
        hints.append(
            "the checkpoint " + ("uses" if has_dcn else "has no") + " deformable convolutions but the config "
            + ("does not" if has_dcn else "does")
        )
    if any(k.startswith("backbone._preconv") for k in state) != any(k.startswith("backbone._preconv") for k in model_state):
        hints.append("one of checkpoint and config is DarkNet-53, the other ResNet")
    if not hints:
        hints.append("the checkpoint was saved from another model configuration; pass the right config=")
    return "; ".join(hints)


def _preview(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def load_state_dict_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Copy ``state`` into ``module``; any missing, unexpected or mis-shaped key raises one error."""
    model_state = {k: v for k, v in module.state_dict().items() if not k.endswith(".num_batches_tracked")}
    missing = sorted(set(model_state) - set(state))
    unexpected = sorted(set(state) - set(model_state))
    mismatched = sorted(
        f"{k} (checkpoint {list(state[k].shape)}, model {list(model_state[k].shape)})"
        for k in set(model_state) & set(state)
        if state[k].shape != model_state[k].shape
    )
    if missing or unexpected or mismatched:
        parts = [f"{source} does not fit the model:"]
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_preview(mismatched, 4)}")
        parts.append(f"Likely cause: {_likely_cause(model_state, state)}.")
        raise CheckpointError("\n".join(parts))
    non_float = sorted(k for k, v in state.items() if not v.is_floating_point())
    if non_float:
        raise CheckpointError(f"{source}: expected floating-point tensors, got integer ones for {_preview(non_float)}")
    with torch.no_grad():
        for name, target in module.state_dict(keep_vars=True).items():
            if name in state:
                target.copy_(state[name])
