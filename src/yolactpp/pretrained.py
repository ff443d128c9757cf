"""Where ``YolactPP.from_pretrained(x)`` reads weights from, and the one place they are loaded.

Every source becomes one :class:`~yolactpp.checkpoint.LoadedWeights` (config + state dict), tried
in this order:

1. an existing file: an original ``.pth`` checkpoint (a ``model.safetensors`` file: its folder);
2. an existing folder: the own format (``config.json`` + ``model.safetensors``);
3. a published zoo name (``weights_manifest.json``): the converted copy (:mod:`yolactpp.converted`)
   when there is one, else the original from the hub (:mod:`yolactpp.hub`: download, verify);
4. ``"owner/name"``: an own-format repository on the Hugging Face Hub;
5. anything else: a clear error (missing path, or an unknown name with close matches).

:func:`load_network` then builds the network with one strict load
(:func:`yolactpp.builder.build_network`) and, for a zoo original read for the first time, writes
its converted copy from the network that loaded: download, conversion and checks happen once each.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from yolactpp import converted, hub, manifest, serialization
from yolactpp._facts import is_url
from yolactpp.builder import build_network
from yolactpp.checkpoint import CheckpointError, LoadedWeights, read_original, with_class_names
from yolactpp.config import ModelConfig
from yolactpp.errors import InvalidArgumentError, MissingFileError
from yolactpp.manifest import ManifestEntry
from yolactpp.registry import as_model_config

if TYPE_CHECKING:
    from yolactpp.network import YolactNetwork

__all__ = ["load_network", "pretrained_dir", "read_weights"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".json", ".bin", ".ckpt")
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Conversion:
    """A zoo original read for the first time: where its converted copy goes once it has loaded."""

    entry: ManifestEntry
    target: Path
    provenance: dict[str, object]


@contextlib.contextmanager
def _zoo_errors(name: str) -> Iterator[None]:
    """A zoo original that does not load: say how to refetch it."""
    try:
        yield
    except CheckpointError as exc:
        raise type(exc)(
            f"{name}: {exc}\nIf the download was damaged, refetch it with "
            f"YolactPP.from_pretrained({name!r}, force_download=True)."
        ) from None


def _read_zoo(name: str, revision: str | None, force: bool) -> tuple[LoadedWeights, Path, _Conversion | None]:
    """The weights of a zoo model, the folder of its converted copy, and the conversion still to do."""
    entry = manifest.get_entry(name)
    rev = revision or entry.revision
    original, commit = hub.fetch_original(entry, revision=rev, force_download=force)
    digest = None if commit is not None else hub.verify_file(entry, original)
    target = converted.location(name, commit, digest)
    if not force and converted.is_valid(target, entry):
        try:
            logger.debug("yolactpp: using converted weights %s", target)
            label = f"{name} ({target / serialization.WEIGHTS_NAME})"
            return serialization.read_pretrained_dir(target, label), target, None
        except CheckpointError as exc:  # a damaged derived copy: rebuild it from the verified download
            logger.warning("yolactpp: rebuilding the converted cache %s (%s)", target, exc)
            shutil.rmtree(target, ignore_errors=True)
    if digest is None:
        digest = hub.verify_file(entry, original)
    logger.info("yolactpp: converting %s to %s (once)", original, target)
    with _zoo_errors(name):
        weights = read_original(original, entry.config)
    provenance: dict[str, object] = {
        "source": entry.filename,
        "source_sha256": digest,
        "hub_repo": entry.repo_id,
        "revision": rev,
        "commit": commit,
        "zoo_name": entry.name,
    }
    return weights, target, _Conversion(entry, target, provenance)


def _read_own_format(
    name_or_path: str | os.PathLike[str], revision: str | None, force_download: bool
) -> tuple[LoadedWeights, _Conversion | None] | None:
    """Weights that carry their config (own-format folder, zoo name, hub repo; a zoo original read
    for the first time comes with its pending conversion); ``None`` for an original ``.pth`` file."""
    if is_url(name_or_path):
        raise InvalidArgumentError(
            f"{name_or_path} is a URL; from_pretrained does not download URLs: download the file and pass its "
            "path, or pass a published model name (listed by `yolactpp models`) or an 'owner/name' Hugging Face "
            "Hub repo"
        )
    path = Path(name_or_path)
    if path.is_file():
        if path.suffix == ".safetensors" or path.name == serialization.CONFIG_NAME:
            return serialization.read_pretrained_dir(path.parent), None
        return None
    if path.is_dir():
        return serialization.read_pretrained_dir(path), None
    if not isinstance(name_or_path, str):
        raise MissingFileError(f"no file or directory at {name_or_path}")
    name = name_or_path
    if name in manifest.load_manifest():
        weights, _, conversion = _read_zoo(name, revision, force_download)
        return weights, conversion
    looks_like_path = path.suffix in _FILE_SUFFIXES or name.startswith((".", "~")) or ".." in name
    if _REPO_ID.match(name) and not looks_like_path:
        folder = hub.download_repo(name, revision=revision, force_download=force_download)
        return serialization.read_pretrained_dir(folder), None
    if looks_like_path or "/" in name or os.sep in name:
        raise MissingFileError(f"no file or directory at {name!r} (from_pretrained got a path that does not exist)")
    manifest.get_entry(name)  # not published: raises UnknownModelError with close names
    raise AssertionError("unreachable")  # pragma: no cover


def _read(
    name_or_path: str | os.PathLike[str],
    config: ModelConfig | str | None,
    class_names: Sequence[str] | None,
    revision: str | None,
    force_download: bool,
) -> tuple[LoadedWeights, _Conversion | None]:
    cfg = as_model_config(config)  # an unknown name fails before any download
    found = _read_own_format(name_or_path, revision, force_download)
    if found is None:
        # The config as given: a name still lets read_original infer the class count from the weights.
        return read_original(Path(name_or_path), config, class_names), None
    weights, conversion = found
    if cfg is not None or class_names is not None:
        conversion = None  # the copy holds the published model; an override is this load's only
    if cfg is not None:
        weights = dataclasses.replace(weights, config=cfg)
    return with_class_names(weights, class_names), conversion


def read_weights(
    name_or_path: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    force_download: bool = False,
) -> LoadedWeights:
    """Read ``name_or_path`` (see the module docstring) into config + state dict, without loading it.

    ``config`` (a :class:`ModelConfig` or a registered name) replaces the stored or inferred one
    (for an original ``.pth``, a name still lets the class count come from the weights);
    ``class_names`` names the classes (their count must match the weights).
    """
    return _read(name_or_path, config, class_names, revision, force_download)[0]


def _build(weights: LoadedWeights, conversion: _Conversion | None) -> YolactNetwork:
    """The one strict load; a zoo original that loaded is then written as its converted copy."""
    if conversion is None:
        return build_network(weights)
    with _zoo_errors(conversion.entry.name):
        network = build_network(weights)
    state = serialization.network_state(network)
    converted.write(conversion.target, conversion.entry, weights.config, state, conversion.provenance)
    return network


def load_network(
    name_or_path: str | os.PathLike[str],
    config: ModelConfig | str | None = None,
    class_names: Sequence[str] | None = None,
    *,
    revision: str | None = None,
    force_download: bool = False,
) -> YolactNetwork:
    """The network of ``name_or_path`` (arguments as for :func:`read_weights`), strictly loaded
    once; a zoo original read for the first time is then stored as its converted copy."""
    return _build(*_read(name_or_path, config, class_names, revision, force_download))


def pretrained_dir(name: str, *, revision: str | None = None, force_download: bool = False) -> Path:
    """The own-format folder of zoo model ``name``: downloaded, verified and converted once, then reused
    (``cache_dir()/converted/v1/<name>/<commit>``; ``force_download`` redoes both)."""
    weights, target, conversion = _read_zoo(name, revision, force_download)
    if conversion is not None:
        _build(weights, conversion)
    return target
