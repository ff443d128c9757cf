"""The weights manifest (``weights_manifest.json``, shipped in the package): what is published where.

Each entry names the hub repository, file and revision of one zoo model, its config, input size,
license, published COCO figures, and the checksums known for the file. ``size``/``sha256`` are the
hub file's and authoritative; ``original_release`` describes the 2019 release file the hub copy
re-uploads and is informational. Parsing is strict: unknown or missing fields are errors.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from yolactpp.errors import YolactppError
from yolactpp.registry import UnknownModelError, list_models

__all__ = [
    "ManifestEntry",
    "ManifestError",
    "Metrics",
    "ReleaseChecksum",
    "get_entry",
    "load_manifest",
    "parse_manifest",
]

MANIFEST_FORMAT_VERSION = 1
_MANIFEST_RESOURCE = "weights_manifest.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(YolactppError, ValueError):
    """A weights manifest with a missing, unknown or malformed field."""


@dataclass(frozen=True)
class Metrics:
    """Published accuracy/speed figures, exactly as their source states them (``None``: not stated)."""

    dataset: str
    mask_ap: float | None
    box_ap: float | None
    fps: float | None
    gpu: str | None
    source: str


@dataclass(frozen=True)
class ReleaseChecksum:
    """Size/sha256 of a reference copy of the file (not the hub file); a mismatch only warns."""

    size: int | None
    sha256: str | None
    source: str


@dataclass(frozen=True)
class ManifestEntry:
    """One published model: where its weights live and what is known about them.

    ``size``/``sha256`` describe the hub file and are authoritative (``None``: unknown).
    """

    name: str
    config: str
    description: str
    repo_id: str
    filename: str
    revision: str
    input_size: int
    license: str
    released: str | None
    size: int | None
    sha256: str | None
    original_release: ReleaseChecksum | None
    metrics: Metrics

    def url(self, revision: str | None = None) -> str:
        """Download URL of the file on the configured endpoint (``HF_ENDPOINT``)."""
        from huggingface_hub import hf_hub_url

        return hf_hub_url(self.repo_id, self.filename, revision=revision or self.revision)


def _check_fields(where: str, data: Any, required: set[str], optional: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} must be an object, got {type(data).__name__}")
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - required - optional)
    if missing or unknown:
        raise ManifestError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}")
    return dict(data)


def _typed(where: str, value: Any, kind: type | tuple[type, ...], nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ManifestError(
            f"{where} must be {getattr(kind, '__name__', kind)}{' or null' if nullable else ''}, got {value!r}"
        )
    return value


def _sha256_field(where: str, value: Any) -> str | None:
    value = _typed(where, value, str, nullable=True)
    if value is not None and not _SHA256.match(value):
        raise ManifestError(f"{where} must be 64 lowercase hex digits, got {value!r}")
    return value


def _size_field(where: str, value: Any) -> int | None:
    value = _typed(where, value, int, nullable=True)
    if value is not None and value <= 0:
        raise ManifestError(f"{where} must be positive, got {value}")
    return value


def _parse_entry(name: str, data: Any) -> ManifestEntry:
    where = f"weights manifest: models.{name}"
    fields = {
        "config",
        "description",
        "repo_id",
        "filename",
        "revision",
        "input_size",
        "license",
        "released",
        "size",
        "sha256",
        "original_release",
        "metrics",
    }
    d = _check_fields(where, data, fields)
    release = d["original_release"]
    if release is not None:
        r = _check_fields(f"{where}.original_release", release, {"size", "sha256", "source"})
        release = ReleaseChecksum(
            size=_size_field(f"{where}.original_release.size", r["size"]),
            sha256=_sha256_field(f"{where}.original_release.sha256", r["sha256"]),
            source=_typed(f"{where}.original_release.source", r["source"], str),
        )
    m = _check_fields(f"{where}.metrics", d["metrics"], {"dataset", "mask_ap", "box_ap", "fps", "gpu", "source"})
    metrics = Metrics(
        dataset=_typed(f"{where}.metrics.dataset", m["dataset"], str),
        mask_ap=_typed(f"{where}.metrics.mask_ap", m["mask_ap"], (int, float), nullable=True),
        box_ap=_typed(f"{where}.metrics.box_ap", m["box_ap"], (int, float), nullable=True),
        fps=_typed(f"{where}.metrics.fps", m["fps"], (int, float), nullable=True),
        gpu=_typed(f"{where}.metrics.gpu", m["gpu"], str, nullable=True),
        source=_typed(f"{where}.metrics.source", m["source"], str),
    )
    repo_id = _typed(f"{where}.repo_id", d["repo_id"], str)
    if repo_id.count("/") != 1:
        raise ManifestError(f"{where}.repo_id must look like 'owner/name', got {repo_id!r}")
    return ManifestEntry(
        name=name,
        config=_typed(f"{where}.config", d["config"], str),
        description=_typed(f"{where}.description", d["description"], str),
        repo_id=repo_id,
        filename=_typed(f"{where}.filename", d["filename"], str),
        revision=_typed(f"{where}.revision", d["revision"], str),
        input_size=_typed(f"{where}.input_size", d["input_size"], int),
        license=_typed(f"{where}.license", d["license"], str),
        released=_typed(f"{where}.released", d["released"], str, nullable=True),
        size=_size_field(f"{where}.size", d["size"]),
        sha256=_sha256_field(f"{where}.sha256", d["sha256"]),
        original_release=release,
        metrics=metrics,
    )


def parse_manifest(data: Mapping[str, Any]) -> dict[str, ManifestEntry]:
    """Validate a decoded ``weights_manifest.json``; unknown or missing fields raise :class:`ManifestError`."""
    top = _check_fields("weights manifest", data, {"format_version", "models"}, frozenset({"about"}))
    if top["format_version"] != MANIFEST_FORMAT_VERSION:
        raise ManifestError(
            f"weights manifest: unsupported format_version {top['format_version']!r} "
            f"(expected {MANIFEST_FORMAT_VERSION})"
        )
    models = top["models"]
    if not isinstance(models, Mapping):
        raise ManifestError("weights manifest: 'models' must be an object")
    return {name: _parse_entry(name, entry) for name, entry in models.items()}


@functools.lru_cache(maxsize=1)
def _packaged_manifest() -> dict[str, ManifestEntry]:
    text = resources.files("yolactpp").joinpath(_MANIFEST_RESOURCE).read_text(encoding="utf-8")
    return parse_manifest(json.loads(text))


def load_manifest() -> dict[str, ManifestEntry]:
    """The packaged weights manifest: model name -> :class:`ManifestEntry`."""
    return dict(_packaged_manifest())


def get_entry(name: str) -> ManifestEntry:
    """The manifest entry of ``name``; :class:`UnknownModelError` (with close names) otherwise."""
    manifest = load_manifest()
    if name in manifest:
        return manifest[name]
    registered = list_models()
    if name in registered:
        raise UnknownModelError(
            f"model {name!r} is registered but has no published weights (it is not in weights_manifest.json). "
            f"Build it with YolactPP(get_model_config({name!r})) or load your own weights: "
            f"YolactPP.from_pretrained('path/to/weights.pth', config={name!r}) or a save_pretrained() directory."
        )
    known = sorted(manifest)
    close = difflib.get_close_matches(name, sorted(set(known) | set(registered)), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(
        f"unknown pretrained model {name!r}.{hint} Published models: {', '.join(known)}. "
        "from_pretrained also takes a local .pth file, a save_pretrained() directory or a hub repo 'owner/name'."
    )
