"""weights_manifest.json agrees with the model registry and records only stated facts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yolactpp import get_model_config, hub, list_models
from yolactpp.checkpoint import config_name_from_filename

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_FILE = ROOT / "src" / "yolactpp" / "weights_manifest.json"
ZOO = ("yolact_base", "yolact_darknet53", "yolact_im700", "yolact_plus_base", "yolact_plus_resnet50", "yolact_resnet50")
# dbolya/yolact README at 902073d: COCO test-dev mask mAP and FPS on a Titan Xp.
PUBLISHED = {
    "yolact_resnet50": (28.2, 42.5),
    "yolact_darknet53": (28.7, 40.0),
    "yolact_base": (29.8, 33.5),
    "yolact_im700": (31.2, 23.6),
    "yolact_plus_resnet50": (34.1, 33.5),
    "yolact_plus_base": (34.6, 27.3),
}
REPOS = {
    "yolact_base": "dbolya/yolact-base",
    "yolact_im700": "dbolya/yolact-im700",
    "yolact_darknet53": "dbolya/yolact-darknet53",
    "yolact_resnet50": "dbolya/yolact-resnet50",
    "yolact_plus_base": "dbolya/yolact-plus-base",
    "yolact_plus_resnet50": "dbolya/yolact-plus-resnet50",
}


def test_root_manifest_is_the_packaged_one() -> None:
    root = ROOT / "weights_manifest.json"
    assert root.read_bytes() == PACKAGE_FILE.read_bytes()
    assert root.resolve() == PACKAGE_FILE.resolve()  # one source: the root path is a symlink


def test_manifest_is_shipped_as_package_data() -> None:
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "weights_manifest.json" in pyproject["tool"]["setuptools"]["package-data"]["yolactpp"]
    assert set(hub.load_manifest()) == set(ZOO)  # read through importlib.resources


def test_every_zoo_model_has_an_entry_that_matches_its_config() -> None:
    manifest = hub.load_manifest()
    assert set(ZOO) <= set(list_models())
    for name in ZOO:
        entry = manifest[name]
        config = get_model_config(entry.config)
        assert entry.name == name and entry.config == name and config.name == name
        assert entry.input_size == config.preprocess.size
        assert entry.filename == f"{name}_54_800000.pth"
        assert config_name_from_filename(entry.filename) == entry.config
        assert entry.repo_id == REPOS[name] and entry.revision == "main"
        assert entry.license == "MIT"
        assert (entry.metrics.mask_ap, entry.metrics.fps) == PUBLISHED[name]
        assert entry.metrics.gpu == "Titan Xp" and entry.metrics.dataset == "COCO test-dev"
        assert entry.metrics.box_ap is None  # the README states no box AP
        assert "902073d" in entry.metrics.source
        assert entry.size is None and entry.sha256 is None  # no hub checksum is known


def test_original_release_checksum_is_recorded_as_such() -> None:
    manifest = hub.load_manifest()
    release = manifest["yolact_resnet50"].original_release
    assert release is not None
    assert release.size == 127_300_392
    assert release.sha256 == "c12bb7a7e0343281db7f1407b376970bb52651f121d0b60bc4a49207acb6d6d7"
    assert "open_model_zoo" in release.source
    assert all(manifest[n].original_release is None for n in ZOO if n != "yolact_resnet50")


def _raw() -> dict:
    return json.loads(PACKAGE_FILE.read_text())


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["models"]["yolact_base"].update(checksum="x"), r"unknown field\(s\) \['checksum'\]"),
        (lambda d: d["models"]["yolact_base"].pop("filename"), r"missing field\(s\) \['filename'\]"),
        (lambda d: d["models"]["yolact_base"].update(sha256="ABC"), "64 lowercase hex digits"),
        (lambda d: d["models"]["yolact_base"].update(size=-1), "must be positive"),
        (lambda d: d["models"]["yolact_base"].update(input_size="550"), "input_size must be int"),
        (lambda d: d["models"]["yolact_base"].update(repo_id="yolact-base"), "'owner/name'"),
        (lambda d: d.update(format_version=2), "unsupported format_version 2"),
    ],
)
def test_manifest_validation(edit, message: str) -> None:
    data = _raw()
    edit(data)
    with pytest.raises(ValueError, match=message):
        hub.parse_manifest(data)


def test_entry_url_follows_the_endpoint() -> None:
    entry = hub.get_entry("yolact_im700")
    assert entry.url().endswith("/dbolya/yolact-im700/resolve/main/yolact_im700_54_800000.pth")
    assert entry.url("abc").endswith("/resolve/abc/yolact_im700_54_800000.pth")
