"""Zoo downloads through huggingface_hub against a local fake hub (tests/fakehub.py, 127.0.0.1 only).

huggingface_hub reads HF_ENDPOINT / HF_HOME / HF_HUB_OFFLINE once, at import, into
``huggingface_hub.constants``; the ``hf`` fixture points those constants (and the environment) at
the fake hub and a fresh per-test HF_HOME. ``test_real_environment_variables`` checks the
environment-variable path end to end in fresh interpreters.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.fakehub import FakeHub, sha256_of
from yolactpp import (
    CheckpointError,
    UnknownModelError,
    YolactPP,
    builder,
    checkpoint,
    converted,
    get_model_config,
    hub,
    manifest,
)
from yolactpp.checkpoint import read_original_checkpoint
from yolactpp.hub import ChecksumError, ChecksumWarning, HubDownloadError

NAME = "yolact_resnet50"
REPO = "dbolya/yolact-resnet50"
FILE = "yolact_resnet50_54_800000.pth"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def hf(fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HF_HOME and huggingface_hub aimed at the fake hub; no token is ever sent."""
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "YOLACTPP_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    patches = {
        "ENDPOINT": fake_hub.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": fake_hub.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hub"),
        "HF_HUB_OFFLINE": False,
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "HF_HUB_DISABLE_IMPLICIT_TOKEN": True,
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
    }
    for attr, value in patches.items():
        if hasattr(constants, attr):
            monkeypatch.setattr(constants, attr, value)
    return home


@pytest.fixture(scope="module")
def original(checkpoint) -> Path:
    return checkpoint(NAME)


@pytest.fixture(scope="module")
def reference(original: Path) -> dict[str, torch.Tensor]:
    return YolactPP.from_pretrained(original).network.state_dict()


def _same(model: YolactPP, state: dict[str, torch.Tensor]) -> bool:
    ours = model.network.state_dict()
    return ours.keys() == state.keys() and all(torch.equal(ours[k], state[k]) for k in ours)


def _override(monkeypatch: pytest.MonkeyPatch, name: str = NAME, **changes: object) -> manifest.ManifestEntry:
    entries = manifest.load_manifest()
    entries[name] = dataclasses.replace(entries[name], **changes)
    monkeypatch.setattr(manifest, "load_manifest", lambda: dict(entries))
    return entries[name]


def _converted(name: str = NAME) -> list[Path]:
    root = hub.cache_dir() / "converted" / "v1" / name
    return sorted(p for p in root.iterdir() if (p / "model.safetensors").is_file()) if root.is_dir() else []


class _Spy:
    """Counts conversions (converted copies written) and strict loads."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.strict_loads = 0
        real_write, real_load = converted.write, checkpoint.load_state_dict_strict

        def write(*args: Any, **kwargs: Any) -> Path:
            self.calls += 1
            return real_write(*args, **kwargs)

        def load(*args: Any, **kwargs: Any) -> None:
            self.strict_loads += 1
            real_load(*args, **kwargs)

        monkeypatch.setattr(converted, "write", write)
        monkeypatch.setattr(builder, "load_state_dict_strict", load)


# -- first download, cache hits, offline ----------------------------------------------------------
def test_download_converts_once_and_reloads_with_the_hub_gone(hf, fake_hub, original, reference, monkeypatch) -> None:
    commit = fake_hub.commit(REPO, {FILE: original})
    spy = _Spy(monkeypatch)
    assert not hub.is_cached(NAME)
    # The manifest's only checksum is the 2019 Google Drive file's: a difference warns, never fails.
    with pytest.warns(ChecksumWarning, match="differs from the original release"):
        model = YolactPP.from_pretrained(NAME)
    assert _same(model, reference) and model.config == get_model_config(NAME)
    assert spy.calls == 1 and fake_hub.count("GET", server="cdn") == 1
    assert spy.strict_loads == 1  # read, checked and loaded once; the copy is written from that network
    assert hub.is_cached(NAME)
    (converted,) = _converted()
    assert converted.name == commit and converted.parent.parent.parent.parent == hf / "yolactpp"
    stamp = (converted / "model.safetensors").stat().st_mtime_ns

    fake_hub.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second verification either
        again = YolactPP.from_pretrained(NAME)
    assert _same(again, reference)
    assert spy.calls == 1 and (converted / "model.safetensors").stat().st_mtime_ns == stamp


def test_offline_mode_uses_the_cache_without_requests(hf, fake_hub, original, reference, monkeypatch) -> None:
    from huggingface_hub import constants

    _override(monkeypatch, original_release=None)
    fake_hub.commit(REPO, {FILE: original})
    hub.download_original(NAME)
    seen = len(fake_hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.is_cached(NAME)
    assert _same(YolactPP.from_pretrained(NAME), reference)
    assert len(fake_hub.requests) == seen


def test_offline_mode_without_cache_says_what_to_fetch(hf, fake_hub, original, monkeypatch) -> None:
    from huggingface_hub import constants

    fake_hub.commit(REPO, {FILE: original})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubDownloadError) as info:
        YolactPP.from_pretrained(NAME)
    message = str(info.value)
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in message
    assert f"{fake_hub.url}/{REPO}/resolve/main/{FILE}" in message
    assert f"YolactPP.from_pretrained('/path/to/{FILE}')" in message
    assert str(hf / "hub") in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert fake_hub.requests == [] and not hub.is_cached(NAME)


def test_unreachable_hub_fails_at_once_and_suggests_offline_mode(hf, fake_hub, original, caplog) -> None:
    """No network and nothing cached: one error naming HF_HUB_OFFLINE=1, without huggingface_hub's
    minute of retries (each logged with a traceback)."""
    fake_hub.commit(REPO, {FILE: original})
    fake_hub.stop()  # the port now refuses connections, as a machine without network does
    with caplog.at_level(logging.DEBUG), pytest.raises(HubDownloadError) as info:
        YolactPP.from_pretrained(NAME)
    message = str(info.value)
    assert f"the hub at {fake_hub.url} cannot be reached" in message
    assert "Set HF_HUB_OFFLINE=1" in message
    assert not [r for r in caplog.records if r.name.startswith("huggingface_hub")]  # no retry was tried
    assert info.value.__cause__ is None


def test_force_download_offline_is_refused(hf, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubDownloadError, match="force_download=True needs network access"):
        YolactPP.from_pretrained(NAME, force_download=True)


# -- damaged downloads and checksums --------------------------------------------------------------
def test_truncated_file_on_the_hub_gives_a_checkpoint_error(hf, fake_hub, original, monkeypatch) -> None:
    _override(monkeypatch, original_release=None)
    fake_hub.commit(REPO, {FILE: original.read_bytes()[:1_000_000]})
    with pytest.raises(CheckpointError) as info:
        YolactPP.from_pretrained(NAME)
    message = str(info.value)
    assert FILE in message and "not a readable PyTorch checkpoint" in message
    assert f"YolactPP.from_pretrained('{NAME}', force_download=True)" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no torch stack trace
    assert _converted() == []


def test_download_shorter_than_announced_is_reported(hf, fake_hub, original, monkeypatch) -> None:
    _override(monkeypatch, original_release=None)
    fake_hub.commit(REPO, {FILE: original})
    fake_hub.file(REPO, FILE).advertised_size = original.stat().st_size + 10
    with pytest.raises(HubDownloadError, match=f"(?s)downloading {FILE} from {REPO}.*failed.*force_download=True"):
        YolactPP.from_pretrained(NAME)
    assert not hub.is_cached(NAME)


def test_corrupted_cached_file_fails_the_checksum_then_refetch_fixes_it(
    hf, fake_hub, original, reference, monkeypatch
) -> None:
    _override(monkeypatch, sha256=sha256_of(original), size=original.stat().st_size, original_release=None)
    fake_hub.commit(REPO, {FILE: original})
    path = hub.download_original(NAME)  # verified, not yet converted
    with open(path.resolve(), "r+b") as f:  # one flipped byte in the cached blob
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumError) as info:
        YolactPP.from_pretrained(NAME)
    message = str(info.value)
    assert f"sha256 mismatch for {path}" in message and sha256_of(original) in message
    assert f"YolactPP.from_pretrained('{NAME}', force_download=True)" in message
    assert _converted() == []
    assert _same(YolactPP.from_pretrained(NAME, force_download=True), reference)
    assert fake_hub.count("GET", server="cdn") == 2


def test_manifest_file_checksum_catches_a_differing_hub_file_until_it_is_refetched(
    hf, fake_hub, checkpoint, original, reference, monkeypatch
) -> None:
    """End to end from a manifest *file*: the entry's sha256 and size go through parse_manifest
    (not a patched entry), the hub serves another valid checkpoint of the same size."""
    from importlib import resources

    data = json.loads(resources.files("yolactpp").joinpath("weights_manifest.json").read_text(encoding="utf-8"))
    data["models"][NAME].update(sha256=sha256_of(original), size=original.stat().st_size, original_release=None)
    monkeypatch.setattr(manifest, "_packaged_manifest", lambda: manifest.parse_manifest(data))
    impostor = checkpoint(NAME, seed=1)  # other weights, same keys and shapes
    assert impostor.stat().st_size == original.stat().st_size
    fake_hub.commit(REPO, {FILE: impostor})

    with pytest.raises(ChecksumError) as info:
        YolactPP.from_pretrained(NAME)
    message = str(info.value)
    assert f"{NAME}: sha256 mismatch for " in message and FILE in message
    assert f"got {sha256_of(impostor)}, the manifest expects {sha256_of(original)}" in message
    assert f"YolactPP.from_pretrained('{NAME}', force_download=True)" in message
    assert _converted() == []

    fake_hub.commit(REPO, {FILE: original})  # the published file is back: the refetch the message names
    assert _same(YolactPP.from_pretrained(NAME, force_download=True), reference)
    assert fake_hub.count("GET", server="cdn") == 2 and len(_converted()) == 1


def test_authoritative_size_mismatch_fails_before_hashing(hf, fake_hub, original, monkeypatch) -> None:
    _override(monkeypatch, size=original.stat().st_size + 1)
    fake_hub.commit(REPO, {FILE: original})
    with pytest.raises(ChecksumError, match=f"size mismatch for .*{FILE}: {original.stat().st_size} bytes"):
        hub.download_original(NAME)


def test_checkpoint_learnt_after_conversion_still_applies(hf, fake_hub, original, monkeypatch) -> None:
    """A converted copy made before the manifest knew a checksum is rechecked against it."""
    _override(monkeypatch, original_release=None)
    fake_hub.commit(REPO, {FILE: original})
    YolactPP.from_pretrained(NAME)
    _override(monkeypatch, sha256="0" * 64, original_release=None)
    with pytest.raises(ChecksumError, match="sha256 mismatch"):
        YolactPP.from_pretrained(NAME)


def test_verify_file_rules(tmp_path: Path) -> None:
    blob = tmp_path / FILE
    blob.write_bytes(b"weights")
    good = sha256_of(blob)
    entry = dataclasses.replace(hub.get_entry(NAME), size=None, sha256=None, original_release=None)
    release = hub.ReleaseChecksum(size=7, sha256="1" * 64, source="somewhere")
    assert hub.verify_file(dataclasses.replace(entry, sha256=good, size=7), blob) == good
    with pytest.warns(ChecksumWarning, match="reference: somewhere"):
        hub.verify_file(dataclasses.replace(entry, original_release=release), blob)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a matching authoritative checksum makes the reference moot
        hub.verify_file(dataclasses.replace(entry, sha256=good, original_release=release), blob)
    with pytest.raises(ChecksumError, match=f"sha256 mismatch for {blob}"):
        hub.verify_file(dataclasses.replace(entry, sha256="2" * 64, original_release=release), blob)


# -- revisions ------------------------------------------------------------------------------------
def test_revision_from_manifest_or_argument_is_pinned(
    hf, fake_hub, checkpoint, original, reference, monkeypatch
) -> None:
    first = fake_hub.commit(REPO, {FILE: original})
    other = checkpoint(NAME, seed=1)
    second = fake_hub.commit(REPO, {FILE: other})  # main moves on
    _override(monkeypatch, revision=first, original_release=None)
    assert _same(YolactPP.from_pretrained(NAME), reference)
    newer = YolactPP.from_pretrained(NAME, revision="main").network.state_dict()
    expected = read_original_checkpoint(other)
    assert all(torch.equal(newer[k], expected[k]) for k in ("proto_net.0.weight", "backbone.conv1.weight"))
    assert [p.name for p in _converted()] == sorted([first, second])
    with pytest.raises(HubDownloadError, match="has no revision 'v9'"):
        YolactPP.from_pretrained(NAME, revision="v9")


# -- own-format repositories ----------------------------------------------------------------------
FIVE = ("apple", "bolt", "cable", "drill", "elbow")


@pytest.fixture(scope="module")
def five_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = dataclasses.replace(get_model_config(NAME), name="parts_five", class_names=FIVE)
    torch.manual_seed(3)
    return YolactPP(cfg).save_pretrained(tmp_path_factory.mktemp("five") / "model")


def test_own_format_repo(hf, fake_hub, five_model_dir) -> None:
    files = {
        "config.json": (five_model_dir / "config.json").read_bytes(),
        "model.safetensors": five_model_dir / "model.safetensors",
    }
    fake_hub.commit("someone/yolact-parts", files)
    local = YolactPP.from_pretrained(five_model_dir)
    model = YolactPP.from_pretrained("someone/yolact-parts")
    assert model.class_names == FIVE and model.config == local.config
    assert _same(model, local.network.state_dict())
    assert fake_hub.count("GET", server="hub") == 1 and fake_hub.count("GET", server="cdn") == 1
    fake_hub.stop()
    assert _same(YolactPP.from_pretrained("someone/yolact-parts"), local.network.state_dict())


def test_own_format_repo_errors(hf, fake_hub, original, monkeypatch) -> None:
    from huggingface_hub import constants

    fake_hub.commit("someone/raw-pth", {FILE: original})
    with pytest.raises(HubDownloadError, match="no model repository 'someone/missing'"):
        YolactPP.from_pretrained("someone/missing")
    with pytest.raises(HubDownloadError, match=r"has no config.json, so it is not a yolactpp model repository"):
        YolactPP.from_pretrained("someone/raw-pth")
    with pytest.raises(HubDownloadError, match="has no revision 'nope'"):
        YolactPP.from_pretrained("someone/raw-pth", revision="nope")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        HubDownloadError, match=r"(?s)someone/raw-pth: config.json is not in the local cache.*/path/to/model_dir"
    ):
        YolactPP.from_pretrained("someone/raw-pth")


# -- names and safety ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("typo", "suggestion"), [("yolact_resnet5", "yolact_resnet50"), ("yolact_plus_bse", "yolact_plus_base")]
)
def test_unknown_model_name_suggests_close_names(typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownModelError, match=f"Did you mean '{suggestion}'") as info:
        YolactPP.from_pretrained(typo)
    hint = str(info.value).split("Did you mean ")[1].split("?")[0]
    assert hint.count(f"'{suggestion}'") == 1  # each close name once


def test_registered_model_without_weights(monkeypatch) -> None:
    from yolactpp import registry

    registry.list_models()
    monkeypatch.setitem(registry._MODELS, "my_untrained", lambda: get_model_config(NAME))
    with pytest.raises(UnknownModelError, match="'my_untrained' is registered but has no published weights"):
        YolactPP.from_pretrained("my_untrained")


def test_malicious_pickle_on_the_hub_is_refused(hf, fake_hub, tmp_path, monkeypatch) -> None:
    from tests.test_security import write_malicious_checkpoint

    marker = tmp_path / "pwned"
    fake_hub.commit(REPO, {FILE: write_malicious_checkpoint(tmp_path / FILE, marker)})
    _override(monkeypatch, original_release=None)
    with pytest.raises(CheckpointError, match="refusing to load"):
        YolactPP.from_pretrained(NAME)
    assert not marker.exists() and _converted() == []


# -- the real environment variables, in fresh interpreters -----------------------------------------
_SCRIPT = """
import sys, warnings
warnings.simplefilter("ignore")
from yolactpp import YolactPP, hub
model = YolactPP.from_pretrained({name!r})
print("LOADED", model.config.name, hub.cache_dir(), flush=True)
if len(sys.argv) > 1:
    YolactPP.from_pretrained(sys.argv[1])
"""


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "YOLACTPP_"))}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(name=NAME), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_real_environment_variables(fake_hub, original, tmp_path) -> None:
    """HF_ENDPOINT, HF_HOME, HF_HUB_OFFLINE and YOLACTPP_CACHE as a user sets them."""
    fake_hub.commit(REPO, {FILE: original})
    home, cache = tmp_path / "home", tmp_path / "converted"
    env = {"HF_HOME": str(home), "HF_ENDPOINT": fake_hub.url, "YOLACTPP_CACHE": str(cache)}
    online = _run(env)
    assert online.returncode == 0, online.stderr
    assert f"LOADED {NAME} {cache}" in online.stdout
    assert fake_hub.count("GET", server="cdn") == 1
    assert list((home / "hub").glob(f"models--dbolya--yolact-resnet50/snapshots/*/{FILE}"))
    assert list(cache.glob(f"converted/v1/{NAME}/*/model.safetensors"))
    seen = len(fake_hub.requests)
    offline = _run({**env, "HF_HUB_OFFLINE": "1"}, "yolact_plus_resnet50")
    assert f"LOADED {NAME} {cache}" in offline.stdout  # cached: loads without the hub
    assert offline.returncode != 0  # not cached: a clear error
    assert "HubDownloadError: yolact_plus_resnet50: the weights are not in the local cache" in offline.stderr
    assert "offline mode is on (HF_HUB_OFFLINE=1)" in offline.stderr
    assert len(fake_hub.requests) == seen


def test_cli_models_lists_figures_and_cache_state(hf, fake_hub, original, capsys) -> None:
    from yolactpp.cli import main

    fake_hub.commit(REPO, {FILE: original})
    assert main(["models", "yolact_*resnet50"]) == 0
    before = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in before[1:3]] == ["yolact_plus_resnet50", "yolact_resnet50"]
    row = next(line for line in before if line.startswith("yolact_resnet50 "))
    assert row.split()[1:6] == ["550", "28.2", "-", "42.5", "(Titan"] and " no " in row
    with pytest.warns(ChecksumWarning):
        YolactPP.from_pretrained(NAME)
    assert main(["models", NAME]) == 0
    after = capsys.readouterr().out
    assert f"{REPO}/{FILE}" in after and " yes " in after
    assert main(["models", "nothing*"]) == 2
    assert "no model matches 'nothing*'" in capsys.readouterr().err


def test_cli_convert_writes_a_loadable_folder(original, reference, tmp_path, capsys) -> None:
    from yolactpp.cli import main

    out = tmp_path / "converted"
    assert main(["convert", str(original), str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert _same(YolactPP.from_pretrained(out), reference)
    assert main(["convert", str(tmp_path / "missing.pth"), str(out)]) == 2
    assert "missing.pth" in capsys.readouterr().err
