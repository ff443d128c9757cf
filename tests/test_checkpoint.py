"""Loading original checkpoints: key rules, config inference, and one clear error per failure."""

from __future__ import annotations

import shutil
from collections import OrderedDict

import pytest
import torch

from tests.oracle.checkpoints import make_state_dict
from yolactpp import CheckpointError, UnknownModelError, YolactPP
from yolactpp.checkpoint import config_name_from_filename, original_to_canonical


def test_config_name_from_filename() -> None:
    assert config_name_from_filename("/x/yolact_plus_base_54_800000.pth") == "yolact_plus_base"
    assert config_name_from_filename("yolact_im700_54_800000.pth") == "yolact_im700"
    assert config_name_from_filename("my_model.pth") is None
    assert config_name_from_filename("yolact_base_54_800000.pt") is None


def test_key_rules_drop_only_what_the_original_drops() -> None:
    t = torch.zeros(1)
    state = OrderedDict(
        [
            ("backbone.layer1.0.conv1.weight", t),  # legacy duplicate name
            ("backbone.layers.0.0.conv1.weight", t),
            ("fpn.downsample_layers.1.weight", t),
            ("fpn.downsample_layers.2.weight", t),  # surplus in the v1 release files
            ("semantic_seg_conv.weight", t),  # training only
            ("backbone.bn1.num_batches_tracked", torch.zeros((), dtype=torch.int64)),
        ]
    )
    assert sorted(original_to_canonical(state)) == ["backbone.layers.0.0.conv1.weight", "fpn.downsample_layers.1.weight"]


def test_v1_checkpoint_with_surplus_downsample_layer_loads(checkpoint) -> None:
    state = torch.load(checkpoint("yolact_resnet50"), weights_only=True)
    assert "fpn.downsample_layers.2.weight" in state  # the file has it ...
    model = YolactPP.from_pretrained(checkpoint("yolact_resnet50"))
    assert "fpn.downsample_layers.2.weight" not in model.network.state_dict()  # ... the model does not
    loaded = model.network.state_dict()["backbone.layers.0.0.conv1.weight"]
    assert torch.equal(loaded, state["backbone.layers.0.0.conv1.weight"])


def test_explicit_config_wins_over_filename(checkpoint, tmp_path) -> None:
    renamed = tmp_path / "weights.pth"
    shutil.copy(checkpoint("yolact_resnet50"), renamed)
    with pytest.raises(CheckpointError, match="cannot infer the model config"):
        YolactPP.from_pretrained(renamed)
    assert YolactPP.from_pretrained(renamed, config="yolact_resnet50").config.name == "yolact_resnet50"


def test_wrong_config_names_keys_and_cause(checkpoint, tmp_path) -> None:
    misnamed = tmp_path / "yolact_plus_resnet50_54_800000.pth"
    shutil.copy(checkpoint("yolact_resnet50"), misnamed)
    with pytest.raises(CheckpointError) as info:
        YolactPP.from_pretrained(misnamed)
    text = str(info.value)
    assert "missing key(s)" in text and "conv_offset_mask" in text
    assert "3 anchors per location, the config 9" in text
    assert "deformable convolutions" in text


def test_other_class_count_is_diagnosed(tmp_path) -> None:
    state = make_state_dict("yolact_resnet50")
    for key in ("prediction_layers.0.conf_layer.weight", "prediction_layers.0.conf_layer.bias"):
        state[key] = state[key][: 3 * 6]  # 3 anchors x (5 classes + background)
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="predicts 5 classes but the config has 80"):
        YolactPP.from_pretrained(path)


EXTRA = "backbone.layers.0.0.conv4.weight"  # a name no key rule drops
MISSING = "proto_net.0.bias"
MISSHAPEN = "fpn.lat_layers.0.bias"


@pytest.fixture(scope="module")
def v1_state(checkpoint) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint("yolact_resnet50"), weights_only=True)


@pytest.mark.parametrize("defects", [("extra",), ("extra", "missing", "misshapen")], ids=["extra", "all three"])
def test_every_key_defect_of_an_original_file_is_named(v1_state, tmp_path, defects: tuple[str, ...]) -> None:
    """Strict loading: a surplus key, a missing one and a mis-shaped tensor each fail, by name."""
    state = dict(v1_state)
    if "extra" in defects:
        state[EXTRA] = torch.zeros(3)
    if "missing" in defects:
        del state[MISSING]
    if "misshapen" in defects:
        state[MISSHAPEN] = state[MISSHAPEN][:-1]
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        YolactPP.from_pretrained(path)
    text = str(info.value)
    assert f"1 unexpected key(s): {EXTRA}" in text
    assert (f"1 missing key(s): {MISSING}" in text) == ("missing" in defects)
    assert (f"1 shape mismatch(es): {MISSHAPEN} (checkpoint [255], model [256])" in text) == ("misshapen" in defects)


def test_unknown_config_suggests_close_names(checkpoint) -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'yolact_resnet50'"):
        YolactPP.from_pretrained(checkpoint("yolact_resnet50"), config="yolact_resnet5")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"hello, not a checkpoint", "not a readable PyTorch checkpoint"),
        (None, "truncated"),  # first half of a real file
    ],
)
def test_unreadable_files(checkpoint, tmp_path, content: bytes | None, message: str) -> None:
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    if content is None:
        data = checkpoint("yolact_resnet50").read_bytes()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        YolactPP.from_pretrained(path)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError):
        YolactPP.from_pretrained("/nonexistent/yolact_base_54_800000.pth")


def test_non_state_dict_is_refused(tmp_path) -> None:
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointError, match="plain state dict"):
        YolactPP.from_pretrained(path)


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_code_running_pickle_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "yolact_resnet50_54_800000.pth"
    torch.save({"x": _RunsCode(str(marker))}, path)
    with pytest.raises(CheckpointError, match="refusing to load.*system"):
        YolactPP.from_pretrained(path)
    assert not marker.exists()
