"""The project's own weights format: a folder with ``config.json`` and ``model.safetensors``.

``config.json`` holds the full :class:`ModelConfig` (``ModelConfig.to_dict()``: architecture,
class names, preprocessing, detection defaults) plus ``format``, ``library_version`` and a free-form
``provenance`` object. ``model.safetensors`` holds the network state dict under the canonical
(original checkpoint) key names, without BatchNorm ``num_batches_tracked`` counters. Safetensors
files contain raw tensors only, so loading them can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from yolactpp._facts import first_line
from yolactpp._version import __version__
from yolactpp.builder import build_network
from yolactpp.checkpoint import CheckpointError, LoadedWeights, read_original
from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, MissingFileError

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "FORMAT_VERSION",
    "WEIGHTS_NAME",
    "convert",
    "network_state",
    "read_pretrained_dir",
    "save_pretrained",
    "sha256_file",
    "write_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: Value of the ``format`` field that marks a yolactpp ``config.json``.
FORMAT = "yolactpp"
#: Version of the folder layout (``config.json`` schema version is ``format_version`` inside it).
FORMAT_VERSION = 1
_ENVELOPE = ("format", "library_version", "provenance")


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def network_state(network: nn.Module) -> dict[str, torch.Tensor]:
    """A network's weights as the own format stores them: CPU, contiguous, no BatchNorm counters."""
    return {
        k: v.detach().to("cpu").contiguous()
        for k, v in network.state_dict().items()
        if not k.endswith(".num_batches_tracked")
    }


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_pretrained(
    model: YolactPP, directory: str | os.PathLike[str], *, provenance: Mapping[str, Any] | None = None
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``; return it."""
    return write_pretrained(directory, model.config, network_state(model.network), provenance=provenance)


def write_pretrained(
    directory: str | os.PathLike[str],
    config: ModelConfig,
    state: Mapping[str, torch.Tensor],
    *,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config`` and a network ``state`` (canonical keys, CPU tensors) as an own-format folder."""
    from safetensors.torch import save_file

    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"save_pretrained needs a directory, but {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"format": FORMAT, "library_version": __version__}
    meta.update(config.to_dict())
    meta["provenance"] = dict(provenance or {})
    tensors = dict(state)
    _atomic_write(out / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt", "yolactpp": config.name}))
    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(out / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out


def _read_config(path: Path) -> tuple[ModelConfig, dict[str, Any], str | None]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not UTF-8 text: {exc}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a yolactpp config (its 'format' field is {meta.get('format')!r}, expected {FORMAT!r}); "
            "write one with model.save_pretrained(dir) or yolactpp.convert(original_pth, dir)"
        )
    provenance = meta.get("provenance", {})
    if not isinstance(provenance, dict):
        raise CheckpointError(f"{path}: 'provenance' must be an object, got {type(provenance).__name__}")
    version = meta.get("library_version")
    try:
        config = ModelConfig.from_dict({k: v for k, v in meta.items() if k not in _ENVELOPE})
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    return config, provenance, version if isinstance(version, str) else None


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file (truncated or corrupted?): {first_line(exc)}"
        ) from None


def read_pretrained_dir(directory: str | os.PathLike[str], source: str | None = None) -> LoadedWeights:
    """Read and validate an own-format folder (files present, JSON, config fields, safetensors);
    ``source`` names it in later errors (default: its weights file)."""
    d = Path(directory)
    config_path, weights_path = d / CONFIG_NAME, d / WEIGHTS_NAME
    if not config_path.is_file():
        raise CheckpointError(
            f"{d} is not a yolactpp model folder: {CONFIG_NAME} is missing (expected the output of "
            "model.save_pretrained(dir) or yolactpp.convert(original_pth, dir); original .pth files are "
            "loaded by passing the file path itself)"
        )
    config, provenance, version = _read_config(config_path)
    if not weights_path.is_file():
        raise CheckpointError(f"{d} has {CONFIG_NAME} but no {WEIGHTS_NAME}: the weights file is missing")
    state = _read_weights(weights_path)
    return LoadedWeights(config, state, source or str(weights_path), provenance, version)


def convert(
    source_pth: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    *,
    class_names: Sequence[str] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Turn an original ``<config>_<epoch>_<iter>.pth`` into an own-format folder; return the folder.

    The file is read tensors-only and checked strictly against the config (inferred from the file
    name unless ``config`` is given), so a folder is only written for weights that load.
    ``class_names`` names the classes of a checkpoint trained on another dataset (stored in the folder).
    """
    source = Path(source_pth)
    if not source.is_file():
        raise MissingFileError(f"no checkpoint file at {source}")
    weights = read_original(source, config, class_names)
    network = build_network(weights)
    info = {"source": source.name, **(provenance or {})}
    if "source_sha256" not in info:
        info["source_sha256"] = sha256_file(source)
    return write_pretrained(output_dir, weights.config, network_state(network), provenance=info)
