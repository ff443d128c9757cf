"""A third-party package adds models through the ``yolactpp.models`` entry-point group.

The test installs a real (tiny) distribution the way pip lays one out: a package plus a
``*.dist-info`` folder with METADATA and entry_points.txt, on a directory put on ``sys.path``, so
``importlib.metadata`` finds it for real. Removing it and calling ``reload_plugins()`` uninstalls.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from yolactpp import UnknownModelError, YolactPP, get_model_config, list_models, registry

PACKAGE = "yolactpp_parts_plugin"
FIVE = ("apple", "bolt", "cable", "drill", "elbow")

_MODULE = textwrap.dedent(
    f'''
    """A yolactpp plugin: one factory entry point and one module entry point."""
    import dataclasses

    from yolactpp import get_model_config, register_model

    FIVE = {FIVE!r}


    def parts_five():
        return dataclasses.replace(get_model_config("yolact_resnet50"), name="parts_five", class_names=FIVE)
    '''
)
_MODELS_MODULE = textwrap.dedent(
    """
    import dataclasses

    from yolactpp import get_model_config, register_model


    @register_model
    def parts_two():
        base = get_model_config("yolact_resnet50")
        return dataclasses.replace(base, name="parts_two", class_names=("nut", "washer"))
    """
)
_ENTRY_POINTS = f"""\
[yolactpp.models]
parts_five = {PACKAGE}:parts_five
more_parts = {PACKAGE}.models
broken = {PACKAGE}_missing_module:factory
"""


def _install(site: Path) -> None:
    pkg = site / PACKAGE
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(_MODULE)
    (pkg / "models.py").write_text(_MODELS_MODULE)
    info = site / f"{PACKAGE}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(_ENTRY_POINTS)
    (info / "RECORD").write_text("")


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site-packages"
    _install(site)
    list_models()  # the built-ins and any real plugins are loaded before ours appears
    monkeypatch.syspath_prepend(str(site))
    registry.reload_plugins()
    yield site
    monkeypatch.undo()  # sys.path without the plugin: "pip uninstall"
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]
    registry.reload_plugins()
    assert "parts_five" not in list_models()


def test_plugin_models_are_listed_and_built(plugin: Path) -> None:
    assert {"parts_five", "parts_two"} <= set(list_models("parts_*"))
    cfg = get_model_config("parts_five")
    assert cfg.class_names == FIVE and cfg.num_classes == 5
    model = YolactPP(cfg)
    assert model.network.state_dict()["prediction_layers.0.conf_layer.weight"].shape[0] == 3 * 6
    assert get_model_config("parts_two").class_names == ("nut", "washer")


def test_broken_plugin_only_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site-packages"
    _install(site)
    list_models()
    monkeypatch.syspath_prepend(str(site))
    with caplog.at_level(logging.WARNING, logger="yolactpp.registry"):
        registry.reload_plugins()
    assert "could not load model plugin 'broken'" in caplog.text
    assert "yolact_base" in list_models() and "parts_five" in list_models()
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]
    registry.reload_plugins()
    assert not set(list_models("parts_*"))


def test_plugin_model_loads_and_saves_weights(plugin: Path, tmp_path: Path) -> None:
    torch.manual_seed(1)
    trained = YolactPP(get_model_config("parts_five"))
    torch.save({k: v for k, v in trained.network.state_dict().items()}, tmp_path / "parts.pth")
    from_pth = YolactPP.from_pretrained(tmp_path / "parts.pth", config="parts_five")
    saved = from_pth.save_pretrained(tmp_path / "parts")
    reloaded = YolactPP.from_pretrained(saved)
    assert reloaded.class_names == FIVE
    state = trained.network.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in reloaded.network.state_dict().items() if "num_batches" not in k)
    with pytest.raises(UnknownModelError, match="'parts_five' is registered but has no published weights"):
        YolactPP.from_pretrained("parts_five")


def test_uninstalled_plugin_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site-packages"
    _install(site)
    list_models()
    with monkeypatch.context() as m:
        m.syspath_prepend(str(site))
        registry.reload_plugins()
        assert "parts_two" in list_models()
    for name in [n for n in sys.modules if n.startswith(PACKAGE)]:
        del sys.modules[name]
    registry.reload_plugins()
    assert "parts_two" not in list_models() and "parts_five" not in list_models()
    with pytest.raises(UnknownModelError, match="unknown model 'parts_five'"):
        get_model_config("parts_five")
