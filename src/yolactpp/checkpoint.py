"""Weights in memory (:class:`LoadedWeights`) and the original YOLACT checkpoints (``<config>_<epoch>_<iteration>.pth``).

Every weights source (an original ``.pth``, an own-format folder, the hub) is read into a
:class:`LoadedWeights`: the config to build and the state dict to load into it, strictly
(:func:`load_state_dict_strict`, which also refuses NaN/inf values).

Files are read with ``torch.load(weights_only=True)``: only tensors are ever unpickled. The
original loader's key rules are applied (legacy ``backbone.layer*`` names and surplus FPN
downsample layers are dropped); the training-only semantic segmentation conv and BatchNorm
``num_batches_tracked`` counters are ignored. Anything else that does not match the model raises
one :class:`CheckpointError` naming the keys and the likely cause.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from yolactpp._facts import first_line
from yolactpp.config import ConfigError, ModelConfig
from yolactpp.errors import InvalidArgumentTypeError, MissingFileError, YolactppError, YolactppWarning, warn_caller
from yolactpp.registry import as_model_config, get_model_config

__all__ = [
    "CheckpointError",
    "LoadedWeights",
    "UnnamedClassesWarning",
    "config_name_from_filename",
    "load_state_dict_strict",
    "original_to_canonical",
    "read_original",
    "read_original_checkpoint",
    "with_class_names",
]

_ORIGINAL_NAME = re.compile(r"^(?P<config>.+)_(?P<epoch>\d+)_(?P<iteration>\d+)\.pth$")
_LEGACY_BACKBONE = re.compile(r"^backbone\.layer(?!s\.)")
_FPN_DOWNSAMPLE = re.compile(r"^fpn\.downsample_layers\.(\d+)\.")
_TRAINING_ONLY = ("semantic_seg_conv.",)


class CheckpointError(YolactppError, ValueError):
    """A weights file that cannot be read, or that does not fit the model it is loaded into."""


class UnnamedClassesWarning(YolactppWarning):
    """Weights predict another number of classes than their config names; placeholder names are used."""


@dataclass(frozen=True)
class LoadedWeights:
    """What every weights source reader returns: the config to build and the state dict (canonical
    keys) to load into it strictly; ``source`` names the weights in error messages."""

    config: ModelConfig
    state: dict[str, torch.Tensor]
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    library_version: str | None = None


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
        refused = _unsafe_detail(str(exc))
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc) and refused:
            raise CheckpointError(
                f"refusing to load {p}: it contains Python objects other than tensors, which could run "
                f"code when unpickled (only weights_only loading is allowed). {refused}"
            ) from None
        detail = first_line(exc)
        if isinstance(exc, pickle.UnpicklingError) and "Weights only load failed" in str(exc):
            detail = "invalid pickle data"  # torch's text would suggest weights_only=False: never
        raise CheckpointError(
            f"{p} is not a readable PyTorch checkpoint (truncated or corrupted download, or not a "
            f".pth file): {detail}"
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
    non_finite = sorted(k for k, v in state.items() if not bool(torch.isfinite(v).all()))
    if non_finite:
        raise CheckpointError(
            f"{source}: {len(non_finite)} tensor(s) hold NaN or infinite values: {_preview(non_finite)}. "
            "The weights are damaged (or training diverged); predictions from them would be meaningless"
        )
    with torch.no_grad():
        for name, target in module.state_dict(keep_vars=True).items():
            if name in state:
                target.copy_(state[name])


_CONF_KEY = "prediction_layers.0.conf_layer.weight"
_BOX_KEY = "prediction_layers.0.bbox_layer.weight"


def class_count(config: ModelConfig, state: Mapping[str, torch.Tensor]) -> int | None:
    """How many foreground classes the weights predict (``None`` when their layout does not tell,
    e.g. another anchor count than the config's: the strict load then names what does not fit)."""
    conf, box = state.get(_CONF_KEY), state.get(_BOX_KEY)
    per_location = config.anchors.per_location
    if conf is None or box is None or conf.dim() == 0 or box.dim() == 0 or box.shape[0] != 4 * per_location:
        return None
    if conf.shape[0] % per_location or conf.shape[0] // per_location < 2:
        return None
    return conf.shape[0] // per_location - 1


def with_class_names(
    weights: LoadedWeights, class_names: Sequence[str] | None, *, infer: bool = False
) -> LoadedWeights:
    """``weights`` with ``class_names`` put into its config (checked against the class count of the
    weights). Without names and with ``infer`` (weights that carry no names, like original ``.pth``
    files), a class count other than the config's gives placeholder names ``class_0, ...`` and an
    :class:`UnnamedClassesWarning` saying how to pass the real ones."""
    config, count = weights.config, class_count(weights.config, weights.state)
    if class_names is not None:
        if isinstance(class_names, str):
            raise InvalidArgumentTypeError("class_names must be a list of names, got one str")
        names = tuple(class_names)
        if count is not None and len(names) != count:
            raise CheckpointError(
                f"{weights.source}: class_names has {len(names)} name(s) but the weights predict {count} classes"
            )
    elif infer and count is not None and count != config.num_classes:
        names = tuple(f"class_{i}" for i in range(count))
        warn_caller(
            f"{weights.source} predicts {count} classes but config {config.name!r} names {config.num_classes}; "
            f"calling them class_0 ... class_{count - 1}. Pass the real names: "
            f"YolactPP.from_pretrained(path, config={config.name!r}, class_names=[...]) "
            "(CLI: --class-names FILE, one name per line)",
            UnnamedClassesWarning,
            )
    else:
        return weights
    try:
        config = dataclasses.replace(config, class_names=names)
    except ConfigError as exc:
        raise type(exc)(f"{weights.source}: {exc}") from None
    return dataclasses.replace(weights, config=config)


def read_original(
    path: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    class_names: Sequence[str] | None = None,
) -> LoadedWeights:
    """Read an original ``.pth`` into :class:`LoadedWeights`.

    The config is ``config`` or, by default, the one its file name names (as the original does).
    Unless ``config`` is a :class:`ModelConfig` (whose class names are taken as meant), the class
    count is read from the weights, so checkpoints trained on other datasets load too (see
    :func:`with_class_names`).
    """
    p = Path(path)
    cfg = as_model_config(config)
    if cfg is None:
        name = config_name_from_filename(p)
        if name is None:
            raise CheckpointError(
                f"cannot infer the model config from the file name of {p} (expected "
                "'<config>_<epoch>_<iteration>.pth' like the original release files); pass config='<model name>'"
            )
        cfg = get_model_config(name)
    state = original_to_canonical(read_original_checkpoint(p), cfg.num_downsample)
    infer = not isinstance(config, ModelConfig)
    return with_class_names(LoadedWeights(cfg, state, str(p)), class_names, infer=infer)
