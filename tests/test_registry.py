"""Model and backbone registries, configs and DCN placement."""

from __future__ import annotations

import dataclasses
import json

import pytest

import yolactpp
from yolactpp import ModelConfig, UnknownModelError, get_model_config, list_backbones, list_models
from yolactpp.backbone.dcn import ModulatedDeformConv2d
from yolactpp.backbone.resnet import dcn_blocks
from yolactpp.network import YolactNetwork
from yolactpp.registry import register_model

RELEASED = ["yolact_base", "yolact_darknet53", "yolact_im700", "yolact_plus_base", "yolact_plus_resnet50", "yolact_resnet50"]


def test_six_released_models_and_three_backbones() -> None:
    assert set(RELEASED) <= set(list_models())
    assert list_models("yolact_plus_*") == ["yolact_plus_base", "yolact_plus_resnet50"]
    assert {"resnet50", "resnet101", "darknet53"} <= set(list_backbones())


@pytest.mark.parametrize("name", RELEASED)
def test_config_round_trips_through_json(name: str) -> None:
    cfg = get_model_config(name)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_configs_are_immutable() -> None:
    cfg = get_model_config("yolact_base")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]
    assert get_model_config("yolact_base") == cfg


def test_from_dict_rejects_unknown_fields() -> None:
    data = get_model_config("yolact_base").to_dict()
    data["backbone"]["depth"] = 50
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['depth'\]"):
        ModelConfig.from_dict(data)


def test_anchor_layouts() -> None:
    assert get_model_config("yolact_base").anchors.per_location == 3
    plus = get_model_config("yolact_plus_base").anchors
    assert plus.per_location == 9 and not plus.square
    assert plus.scales[0] == (24.0, 24 * 2 ** (1 / 3), 24 * 2 ** (2 / 3))
    assert [s[0] for s in get_model_config("yolact_im700").anchors.scales] == [30, 61, 122, 244, 488]


def test_dcn_placement_rule() -> None:
    # yolact_plus_resnet50: every block of C3-C5; yolact_plus_base: interval 3, block 0 ignores it.
    assert dcn_blocks(4, 4, 1) == [True] * 4
    assert dcn_blocks(3, 0, 1) == [False] * 3
    assert [i for i, f in enumerate(dcn_blocks(23, 23, 3)) if f] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert [i for i, f in enumerate(dcn_blocks(4, 4, 3)) if f] == [0, 3]
    assert [i for i, f in enumerate(dcn_blocks(6, 2, 1)) if f] == [4, 5]


@pytest.mark.parametrize("name, count", [("yolact_plus_resnet50", 13), ("yolact_plus_base", 11), ("yolact_base", 0)])
def test_dcn_layer_count(name: str, count: int) -> None:
    net = YolactNetwork(get_model_config(name))
    assert sum(isinstance(m, ModulatedDeformConv2d) for m in net.modules()) == count


def test_unknown_names_suggest_close_ones() -> None:
    with pytest.raises(UnknownModelError, match="Did you mean 'yolact_plus_base'"):
        get_model_config("yolact_plus_bse")
    with pytest.raises(UnknownModelError, match="unknown backbone 'resnet18'"):
        YolactNetwork(dataclasses.replace(get_model_config("yolact_base"), backbone=yolactpp.BackboneConfig("resnet18")))


def test_register_model_refuses_silent_overwrite() -> None:
    @register_model(name="test_tiny_variant")
    def factory() -> ModelConfig:
        return dataclasses.replace(get_model_config("yolact_resnet50"), name="test_tiny_variant", class_names=("a", "b"))

    assert get_model_config("test_tiny_variant").num_classes == 2
    with pytest.raises(ValueError, match="already registered"):
        register_model(name="test_tiny_variant")(lambda: factory())


def test_import_is_lazy() -> None:
    import subprocess
    import sys

    code = "import sys, yolactpp; print('torch' in sys.modules, 'yolactpp.model' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_a_failed_builtin_import_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A first lookup whose built-in import fails must not leave the registry empty for good."""
    from yolactpp import registry

    known = dict(registry._MODELS)
    attempts: list[int] = []

    def flaky_builtins() -> None:  # the first import fails (e.g. interrupted), the next succeeds
        attempts.append(1)
        if len(attempts) == 1:
            raise ImportError("simulated failure importing yolactpp.zoo")
        registry._MODELS.update(known)

    monkeypatch.setattr(registry, "_MODELS", {})
    monkeypatch.setattr(registry, "_loaded_groups", set())
    monkeypatch.setattr(registry, "_load_builtins", flaky_builtins)
    with pytest.raises(ImportError, match="simulated failure"):
        registry.list_models()
    assert registry.list_models() == sorted(known)
    assert registry.get_model_config("yolact_base").name == "yolact_base"
    assert len(attempts) == 2
