"""The weight-loading layers: configs checked when built, custom-class original checkpoints, NaN weights."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from yolactpp import CheckpointError, YolactPP, get_model_config
from yolactpp.checkpoint import UnnamedClassesWarning, read_original
from yolactpp.cli import main
from yolactpp.config import AnchorConfig, ConfigError, ModelConfig, PreprocessConfig
from yolactpp.serialization import CONFIG_NAME, read_pretrained_dir

PARTS = ["bolt", "nut", "washer", "gear", "spring"]


# -- configs are validated when built, wherever they come from -------------------------------------
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: PreprocessConfig(size=0), "preprocess.size: must be an int from 1 to 2048, got 0"),
        (lambda: PreprocessConfig(mean=(1.0, 2.0)), r"preprocess.mean: must be 3 numbers \(R, G, B\) or null"),
        (lambda: PreprocessConfig(std=(1.0, 0.0, 1.0)), r"preprocess.std\[1\]: must be a positive number, got 0.0"),
        (lambda: AnchorConfig(scales=((24.0,), (48.0, 60.0))), "anchors.scales: must be the same number of scales"),
        (lambda: AnchorConfig(aspect_ratios=(1.0, float("nan"))), r"anchors.aspect_ratios\[1\]: must be a positive number"),
        (
            lambda: dataclasses.replace(get_model_config("yolact_base"), class_names=("cat", "dog", "cat")),
            "class_names: must be unique, got 'cat' more than once",
        ),
        (
            lambda: dataclasses.replace(get_model_config("yolact_base"), num_downsample=1),
            r"anchors.scales: must have one entry per FPN level \(4 = 3 backbone.selected_layers \+ 1 num_downsample\), got 5",
        ),
        (lambda: dataclasses.replace(get_model_config("yolact_base"), backbone="resnet101"), "backbone: must be a BackboneConfig"),
    ],
)
def test_bad_config_values_are_named_by_path(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_config_json_errors_name_the_file_and_the_path(tmp_path: Path) -> None:
    data = get_model_config("yolact_resnet50").to_dict()
    data["preprocess"]["size"] = 0
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / CONFIG_NAME).write_text(json.dumps({"format": "yolactpp", **data}))
    with pytest.raises(CheckpointError, match=r"config.json: invalid model config: preprocess.size: must be an int from 1 to 2048, got 0"):
        read_pretrained_dir(folder)
    assert ModelConfig.from_dict(get_model_config("yolact_resnet50").to_dict()) == get_model_config("yolact_resnet50")


def test_a_plugin_config_is_checked_when_its_factory_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from yolactpp import registry

    def bad_plugin() -> ModelConfig:
        return dataclasses.replace(get_model_config("yolact_resnet50"), name="bad", mask_dim=0)

    monkeypatch.setitem(registry._MODELS, "bad_plugin", bad_plugin)
    with pytest.raises(ConfigError, match="mask_dim: must be an int from 1 to 4096, got 0"):
        get_model_config("bad_plugin")


# -- an original checkpoint trained on another dataset (5 classes, no names in the file) -----------
@pytest.fixture(scope="module")
def five_class_pth(v1_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The original-format file the original code writes for a 5-class dataset: per anchor, 6 logits."""
    state = torch.load(v1_checkpoint, weights_only=True)
    for key in ("prediction_layers.0.conf_layer.weight", "prediction_layers.0.conf_layer.bias"):
        t = state[key]
        state[key] = t.reshape(3, 81, *t.shape[1:])[:, :6].reshape(18, *t.shape[1:]).clone()
    path = tmp_path_factory.mktemp("custom") / "parts_model.pth"  # a name that does not name a config
    torch.save(state, path)
    return path


def test_custom_checkpoint_with_names_loads_predicts_and_saves_them(five_class_pth: Path, square_path: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # names given: no warning
        model = YolactPP.from_pretrained(five_class_pth, config="yolact_resnet50", class_names=PARTS)
    assert model.class_names == tuple(PARTS) and model.config.num_classes == 5
    det = model.predict(str(square_path))
    assert len(det) > 0 and int(det.labels.max()) < 5
    assert set(det.class_names) <= set(PARTS)
    saved = model.save_pretrained(tmp_path / "parts")
    assert json.loads((saved / CONFIG_NAME).read_text())["class_names"] == PARTS
    again = YolactPP.from_pretrained(saved)
    assert again.class_names == tuple(PARTS)
    torch.testing.assert_close(again.predict(str(square_path)).scores, det.scores, rtol=0, atol=0)


def test_custom_checkpoint_without_names_gets_placeholders_and_a_warning(five_class_pth: Path) -> None:
    with pytest.warns(UnnamedClassesWarning, match=r"predicts 5 classes but config 'yolact_resnet50' names 80; calling them class_0 \.\.\. class_4"):
        weights = read_original(five_class_pth, "yolact_resnet50")
    assert weights.config.class_names == ("class_0", "class_1", "class_2", "class_3", "class_4")
    # The public entry point infers the count the same way (it used to turn the name into a config first).
    with pytest.warns(UnnamedClassesWarning, match="predicts 5 classes") as record:
        model = YolactPP.from_pretrained(five_class_pth, config="yolact_resnet50")
    assert model.class_names == weights.config.class_names
    assert record[0].filename == __file__  # attributed to the caller's line, not a library line
    with pytest.raises(CheckpointError, match=r"class_names has 3 name\(s\) but the weights predict 5 classes"):
        read_original(five_class_pth, "yolact_resnet50", class_names=PARTS[:3])
    with pytest.raises(CheckpointError, match="cannot infer the model config from the file name"):
        YolactPP.from_pretrained(five_class_pth)


def test_cli_takes_a_class_names_file(five_class_pth: Path, square_path: Path, tmp_path: Path, capsys) -> None:
    names = tmp_path / "parts.txt"
    names.write_text("\n".join(PARTS) + "\n\n")
    out = tmp_path / "run"
    argv = ["predict", str(square_path), "-m", str(five_class_pth), "--config", "yolact_resnet50", "--class-names", str(names)]
    assert main([*argv, "-o", str(out), "--no-plot", "-q", "--score-threshold", "0"]) == 0
    record = json.loads((out / f"{square_path.stem}.json").read_text())
    assert record["detections"] and {d["class_name"] for d in record["detections"]} <= set(PARTS)
    assert main(["convert", str(five_class_pth), str(tmp_path / "conv"), "--config", "yolact_resnet50", "--class-names", str(names)]) == 0
    assert json.loads((tmp_path / "conv" / CONFIG_NAME).read_text())["class_names"] == PARTS
    names.write_text("\n")
    capsys.readouterr()
    assert main([*argv, "-o", str(tmp_path / "run2")]) == 2  # a new folder: the names file is what fails
    assert "holds no class names" in capsys.readouterr().err


# -- values: NaN / inf weights are refused at load --------------------------------------------------
def test_non_finite_weights_are_refused_at_load(five_class_pth: Path, tmp_path: Path) -> None:
    state = torch.load(five_class_pth, weights_only=True)
    state["fpn.lat_layers.0.weight"][0, 0, 0, 0] = float("nan")
    state["proto_net.0.bias"][1] = float("inf")
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError,
        match=r"2 tensor\(s\) hold NaN or infinite values: fpn.lat_layers.0.weight, proto_net.0.bias\. The weights are damaged",
    ):
        YolactPP.from_pretrained(path, config="yolact_resnet50", class_names=PARTS)


# -- layering: the loading modules do not reach back into the model module --------------------------
def test_loading_layers_import_without_the_model_module() -> None:
    code = (
        "import sys, yolactpp.pretrained, yolactpp.serialization, yolactpp.hub, yolactpp.builder; "
        "print('yolactpp.model' in sys.modules)"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}, check=True)
    assert out.stdout.strip() == "False"
