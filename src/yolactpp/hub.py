"""Model zoo downloads through ``huggingface_hub`` and checksum verification: nothing else.

This layer fetches files (:func:`hf_hub_download`: its cache, ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` all apply) and checks them against the manifest's size and
sha256 where it knows them. What is done with the files (conversion to the own format, kept in the
converted-weights cache of :mod:`yolactpp.converted`, and the one strict load) happens in
:mod:`yolactpp.pretrained`.

Nothing here touches the network or the environment at import time.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath

from yolactpp import manifest as _manifest
from yolactpp._facts import first_line
from yolactpp._version import __version__
from yolactpp.checkpoint import CheckpointError
from yolactpp.errors import YolactppError, YolactppWarning, warn_caller
from yolactpp.manifest import ManifestEntry, Metrics, ReleaseChecksum, parse_manifest
from yolactpp.serialization import CONFIG_NAME, WEIGHTS_NAME, sha256_file

__all__ = [
    "CACHE_ENV",
    "ChecksumError",
    "ChecksumWarning",
    "HubDownloadError",
    "ManifestEntry",
    "Metrics",
    "ReleaseChecksum",
    "cache_dir",
    "download_original",
    "download_repo",
    "fetch_original",
    "get_entry",
    "is_cached",
    "load_manifest",
    "parse_manifest",
    "verify_file",
]

logger = logging.getLogger(__name__)

#: Environment variable that relocates the converted-weights cache (default ``$HF_HOME/yolactpp``).
CACHE_ENV = "YOLACTPP_CACHE"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
#: Seconds to wait for the hub's host before calling it unreachable.
_PROBE_TIMEOUT_S = 5.0


class HubDownloadError(YolactppError, OSError):
    """Weights could not be fetched: offline and not cached, hub unreachable, missing repo/file/revision."""


class ChecksumError(CheckpointError):
    """A downloaded file does not match the size or sha256 the manifest marks as authoritative."""


class ChecksumWarning(YolactppWarning):
    """A downloaded file differs from a non-authoritative reference (e.g. the original 2019 release)."""


# -- manifest access (the CLI's entry points) ---------------------------------------------------
def load_manifest() -> dict[str, ManifestEntry]:
    """The packaged weights manifest: zoo model name -> :class:`ManifestEntry`."""
    return _manifest.load_manifest()


def get_entry(name: str) -> ManifestEntry:
    """The manifest entry of zoo model ``name`` (:class:`UnknownModelError` with close names otherwise)."""
    return _manifest.get_entry(name)


# -- caches -------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Root of the converted-weights cache: ``$YOLACTPP_CACHE``, else ``$HF_HOME/yolactpp``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "yolactpp"


def is_cached(name: str, *, revision: str | None = None) -> bool:
    """Whether the weights of zoo model ``name`` are in the local hub cache (loadable offline)."""
    from huggingface_hub import try_to_load_from_cache

    entry = _manifest.get_entry(name)
    found = try_to_load_from_cache(entry.repo_id, entry.filename, revision=revision or entry.revision)
    return isinstance(found, str) and os.path.isfile(found)


# -- downloads ----------------------------------------------------------------------------------
def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _unreachable(endpoint: str) -> str | None:
    """Why the hub's host cannot be reached (one quick TCP connection), or None when it can.

    huggingface_hub retries a file that is not cached for about a minute, logging a traceback per
    try; this check lets a machine without network fail at once instead. Behind a proxy the direct
    connection says nothing, so it is skipped there.
    """
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return None
    parts = urlsplit(endpoint)
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=_PROBE_TIMEOUT_S).close()
    except OSError as exc:
        return first_line(exc)
    return None


def _in_local_cache(repo_id: str, filename: str, revision: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, revision=revision)
    return isinstance(found, str) and os.path.isfile(found)


def _not_available_message(
    repo_id: str, filename: str, revision: str, model: str | None, unreachable: str | None = None
) -> str:
    from huggingface_hub import constants, hf_hub_url

    what = f"{model}: the weights are" if model else f"{repo_id}: {filename} is"
    if _offline():
        reason = "offline mode is on (HF_HUB_OFFLINE=1)"
    elif unreachable is not None:
        reason = f"the hub at {constants.ENDPOINT} cannot be reached ({unreachable})"
    else:
        reason = f"the hub at {constants.ENDPOINT} could not be reached"
    call = f"YolactPP.from_pretrained({(model or repo_id)!r})"
    local = (
        f"YolactPP.from_pretrained('/path/to/{filename}')"
        if model
        else "YolactPP.from_pretrained('/path/to/model_dir') (a folder with config.json and model.safetensors)"
    )
    return (
        f"{what} not in the local cache and {reason}.\n"
        f"  file:  {filename} from {repo_id} (revision {revision})\n"
        f"  url:   {hf_hub_url(repo_id, filename, revision=revision)}\n"
        f"  cache: {constants.HF_HUB_CACHE}\n"
        f"Fix: run {call} once with network access (unset HF_HUB_OFFLINE), "
        f"or download the file yourself and pass its local path: {local}."
        + ("" if _offline() else " Working offline on purpose? Set HF_HUB_OFFLINE=1 so cached models load without network tries.")
    )


def _hf_download(repo_id: str, filename: str, revision: str, force_download: bool, model: str | None = None) -> Path:
    """``hf_hub_download`` with its failures turned into one :class:`HubDownloadError` each."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if force_download and _offline():
        raise HubDownloadError(
            f"cannot refetch {filename} from {repo_id}: force_download=True needs network access "
            "but HF_HUB_OFFLINE is set"
        )
    label = f"{model}: " if model else ""
    if not _offline() and (force_download or not _in_local_cache(repo_id, filename, revision)):
        problem = _unreachable(constants.ENDPOINT)
        if problem is not None:  # fail now, not after a minute of retries
            raise HubDownloadError(_not_available_message(repo_id, filename, revision, model, problem))
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            force_download=force_download,
            library_name="yolactpp",
            library_version=__version__,
        )
    except LocalEntryNotFoundError:
        raise HubDownloadError(_not_available_message(repo_id, filename, revision, model)) from None
    except RevisionNotFoundError:
        raise HubDownloadError(f"{label}the hub repository {repo_id} has no revision {revision!r}") from None
    except EntryNotFoundError:
        if model is None and filename == "config.json":
            raise HubDownloadError(
                f"{repo_id} (revision {revision}) has no config.json, so it is not a yolactpp model repository "
                "(the output of save_pretrained). If it holds an original .pth file, download that file and pass "
                "its path to YolactPP.from_pretrained."
            ) from None
        raise HubDownloadError(
            f"{label}the hub repository {repo_id} (revision {revision}) has no file {filename}"
        ) from None
    except RepositoryNotFoundError:
        raise HubDownloadError(
            f"{label}no model repository {repo_id!r} on the hub (or it is private/gated and you are not logged in: "
            "`hf auth login`). It is not a local path either."
        ) from None
    except HfHubHTTPError as exc:
        raise HubDownloadError(
            f"{label}downloading {filename} from {repo_id} failed: {first_line(exc)}"
        ) from exc
    except Exception as exc:  # network errors, size consistency checks, disk full...
        raise HubDownloadError(
            f"{label}downloading {filename} from {repo_id} (revision {revision}) failed: {first_line(exc)}. "
            "Check the connection and retry; force_download=True refetches the file."
        ) from exc
    return Path(path)


def _commit_of(path: Path, filename: str) -> str | None:
    """The commit hash in a hub-cache path ``.../snapshots/<commit>/<filename>``."""
    depth = len(PurePosixPath(filename).parts)
    parts = path.parts
    if len(parts) < depth + 2 or parts[-depth - 2] != "snapshots":
        return None
    commit = parts[-depth - 1]
    return commit if _COMMIT.match(commit) else None


def _refetch_hint(name: str) -> str:
    return (
        f"The file is corrupted or not the published one. Refetch it with "
        f"YolactPP.from_pretrained({name!r}, force_download=True) "
        f"(or yolactpp.hub.download_original({name!r}, force_download=True))."
    )


def verify_file(entry: ManifestEntry, path: str | os.PathLike[str]) -> str:
    """Check ``path`` against the entry's checksums and return its sha256.

    Authoritative hub checksums (``entry.size``/``entry.sha256``) raise :class:`ChecksumError` on a
    mismatch; when none is known, a difference from ``entry.original_release`` only warns
    (:class:`ChecksumWarning`).
    """
    p = Path(path)
    size = p.stat().st_size
    if entry.size is not None and size != entry.size:
        raise ChecksumError(
            f"{entry.name}: size mismatch for {p}: {size} bytes, the manifest expects {entry.size}. "
            + _refetch_hint(entry.name)
        )
    digest = sha256_file(p)
    if entry.sha256 is not None and digest != entry.sha256:
        raise ChecksumError(
            f"{entry.name}: sha256 mismatch for {p}: got {digest}, the manifest expects {entry.sha256}. "
            + _refetch_hint(entry.name)
        )
    release = entry.original_release
    if entry.sha256 is None and release is not None:
        differs = (release.sha256 is not None and digest != release.sha256) or (
            release.size is not None and size != release.size
        )
        if differs:
            warn_caller(
                f"{entry.name}: {entry.filename} from {entry.repo_id} differs from the original release "
                f"(size {size} vs {release.size}, sha256 {digest} vs {release.sha256}; reference: {release.source}). "
                "The hub copy is a re-upload whose own checksum is not recorded; loading it anyway.",
                ChecksumWarning,
            )
    return digest


def download_original(name: str, *, revision: str | None = None, force_download: bool = False) -> Path:
    """Download (or find in the hub cache) the original ``.pth`` of zoo model ``name`` and verify it."""
    entry = _manifest.get_entry(name)
    path, _ = fetch_original(entry, revision=revision, force_download=force_download)
    verify_file(entry, path)
    return path


def fetch_original(
    entry: ManifestEntry, *, revision: str | None = None, force_download: bool = False
) -> tuple[Path, str | None]:
    """The original ``.pth`` of a manifest entry from the hub (or its cache), not yet verified, and
    the hub commit it came from (``None`` outside the hub-cache layout). The caller verifies it
    (:func:`verify_file`) when it uses the bytes: a copy already converted at that commit need not be."""
    path = _hf_download(entry.repo_id, entry.filename, revision or entry.revision, force_download, model=entry.name)
    return path, _commit_of(path, entry.filename)


def download_repo(repo_id: str, *, revision: str | None = None, force_download: bool = False) -> Path:
    """Fetch an own-format repository (``config.json`` + ``model.safetensors``); returns its local folder."""
    config_path = _hf_download(repo_id, CONFIG_NAME, revision or "main", force_download)
    # Pin the weights to the commit the config came from, so both files belong to one revision.
    commit = _commit_of(config_path, CONFIG_NAME) or revision or "main"
    weights_path = _hf_download(repo_id, WEIGHTS_NAME, commit, force_download)
    if weights_path.parent != config_path.parent:  # pragma: no cover - only without the snapshot layout
        raise HubDownloadError(f"{repo_id}: {CONFIG_NAME} and {WEIGHTS_NAME} resolved to different revisions")
    return config_path.parent


def __getattr__(name: str) -> object:
    if name == "pretrained_dir":  # named, not silently gone: the conversion left the download layer
        raise AttributeError(
            "yolactpp.hub.pretrained_dir moved to yolactpp.pretrained.pretrained_dir (the hub module only "
            "downloads and verifies now)"
        )
    raise AttributeError(f"module 'yolactpp.hub' has no attribute {name!r}")
