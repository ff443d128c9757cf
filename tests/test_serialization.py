"""The own format (config.json + model.safetensors): save, load, convert, and one clear error per defect."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import yolactpp
from yolactpp import CheckpointError, YolactPP, get_model_config
from yolactpp.serialization import CONFIG_NAME, WEIGHTS_NAME, sha256_file

FIVE = ("apple", "bolt", "cable", "drill", "elbow")


def _five_class_model(seed: int = 0) -> YolactPP:
    cfg = dataclasses.replace(get_model_config("yolact_resnet50"), name="parts_five", class_names=FIVE)
    torch.manual_seed(seed)
    return YolactPP(cfg)


def _assert_same_state(a: YolactPP, b: YolactPP) -> None:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def five_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _five_class_model().save_pretrained(tmp_path_factory.mktemp("five") / "model")


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(96, 128, 3), dtype=np.uint8)


def test_custom_class_model_round_trips_exactly(five_dir: Path) -> None:
    original = _five_class_model()
    loaded = YolactPP.from_pretrained(five_dir)
    assert loaded.config == original.config
    assert loaded.class_names == FIVE
    _assert_same_state(original, loaded)
    a, b = original.predict(_image()), loaded.predict(_image())
    assert len(a) > 0 and len(a) == len(b)
    assert torch.equal(a.scores, b.scores) and torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
    assert b.names == FIVE and int(b.labels.max()) < len(FIVE)


def test_saved_files_hold_canonical_keys_and_config(five_dir: Path) -> None:
    assert sorted(p.name for p in five_dir.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    meta = json.loads((five_dir / CONFIG_NAME).read_text())
    assert meta["format"] == "yolactpp" and meta["library_version"] == yolactpp.__version__
    assert meta["class_names"] == list(FIVE) and meta["preprocess"]["size"] == 550
    assert meta["backbone"]["name"] == "resnet50" and meta["name"] == "parts_five"
    state = load_file(five_dir / WEIGHTS_NAME)
    expected = {k for k in _five_class_model().network.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == expected
    assert state["prediction_layers.0.conf_layer.weight"].shape[0] == 3 * (len(FIVE) + 1)


@pytest.mark.parametrize("name", [WEIGHTS_NAME, CONFIG_NAME])
def test_a_file_of_the_folder_can_be_passed(five_dir: Path, name: str) -> None:
    assert YolactPP.from_pretrained(five_dir / name).class_names == FIVE


def test_convert_original_checkpoint(checkpoint, tmp_path: Path) -> None:
    source = checkpoint("yolact_resnet50")
    out = yolactpp.convert(source, tmp_path / "converted")
    meta = json.loads((out / CONFIG_NAME).read_text())
    assert meta["name"] == "yolact_resnet50"
    assert meta["provenance"] == {"source": source.name, "source_sha256": sha256_file(source)}
    _assert_same_state(YolactPP.from_pretrained(source), YolactPP.from_pretrained(out))


def test_convert_refuses_weights_that_do_not_fit(checkpoint, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not fit the model"):
        yolactpp.convert(checkpoint("yolact_resnet50"), tmp_path / "out", config="yolact_base")
    assert not (tmp_path / "out").exists()


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_missing_config(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    (d / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        YolactPP.from_pretrained(d)


def test_missing_weights(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    (d / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        YolactPP.from_pretrained(d)


def test_bad_json(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    (d / CONFIG_NAME).write_text('{"format": "yolactpp",')
    with pytest.raises(CheckpointError, match=r"config.json is not valid JSON \(line 1"):
        YolactPP.from_pretrained(d)


def test_unknown_field(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    meta = json.loads((d / CONFIG_NAME).read_text())
    meta["num_wheels"] = 4
    (d / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"unknown field\(s\) \['num_wheels'\]"):
        YolactPP.from_pretrained(d)


def test_not_a_yolactpp_config(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    (d / CONFIG_NAME).write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="is not a yolactpp config"):
        YolactPP.from_pretrained(d)


def test_wrong_shapes(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    meta = json.loads((d / CONFIG_NAME).read_text())
    meta["class_names"] = meta["class_names"][:3]
    (d / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="(?s)shape mismatch.*predicts 5 classes but the config has 3"):
        YolactPP.from_pretrained(d)


def test_missing_tensor(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    state = load_file(d / WEIGHTS_NAME)
    del state["proto_net.0.weight"]
    save_file(state, d / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): proto_net.0.weight"):
        YolactPP.from_pretrained(d)


@pytest.mark.parametrize("defects", [("extra",), ("extra", "missing", "misshapen")], ids=["extra", "all three"])
def test_every_key_defect_of_a_safetensors_file_is_named(
    five_dir: Path, tmp_path: Path, defects: tuple[str, ...]
) -> None:
    """Strict loading: a surplus tensor, a missing one and a mis-shaped one each fail, by name."""
    d = _copy(five_dir, tmp_path / "m")
    state = load_file(d / WEIGHTS_NAME)
    if "extra" in defects:
        state["proto_net.9.weight"] = torch.zeros(3)
    if "missing" in defects:
        del state["fpn.pred_layers.0.bias"]
    if "misshapen" in defects:
        state["proto_net.0.bias"] = torch.zeros(5)
    save_file(state, d / WEIGHTS_NAME)
    with pytest.raises(CheckpointError) as info:
        YolactPP.from_pretrained(d)
    text = str(info.value)
    assert "1 unexpected key(s): proto_net.9.weight" in text
    assert ("1 missing key(s): fpn.pred_layers.0.bias" in text) == ("missing" in defects)
    assert ("1 shape mismatch(es): proto_net.0.bias (checkpoint [5], model [256])" in text) == ("misshapen" in defects)


def test_truncated_safetensors(five_dir: Path, tmp_path: Path) -> None:
    d = _copy(five_dir, tmp_path / "m")
    data = (d / WEIGHTS_NAME).read_bytes()
    (d / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        YolactPP.from_pretrained(d)


def test_config_argument_overrides_stored_config(five_dir: Path) -> None:
    stored = YolactPP.from_pretrained(five_dir).config
    tweaked = dataclasses.replace(stored, detect=dataclasses.replace(stored.detect, top_k=7))
    assert YolactPP.from_pretrained(five_dir, config=tweaked).config.detect.top_k == 7


def test_directory_without_config_json_is_not_guessed(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a yolactpp model folder"):
        YolactPP.from_pretrained(tmp_path)


@pytest.mark.parametrize("missing", ["./nothing/here.pth", "nothing.safetensors", "a/b/c", "~/nope"])
def test_missing_paths_are_file_not_found(missing: str) -> None:
    with pytest.raises(FileNotFoundError, match="no file or directory"):
        YolactPP.from_pretrained(missing)
