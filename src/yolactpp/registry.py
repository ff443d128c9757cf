"""Name -> factory registries for model configs and backbones, open to plugins.

Models: ``@register_model`` on a zero-argument function returning a :class:`ModelConfig`; the
function name is the model name. Backbones: ``@register_backbone("name")`` on a function taking a
:class:`BackboneConfig` and returning a :class:`~yolactpp.backbone.Backbone`.

Third-party packages add models through the ``yolactpp.models`` entry-point group and backbones
through ``yolactpp.backbones``. An entry point may name a module (importing it runs its
decorators) or a factory function (registered under the entry point's name). Plugins load lazily,
on the first lookup or listing, never at import.
"""

from __future__ import annotations

import difflib
import fnmatch
import logging
import threading
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Callable, TypeVar

from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError, YolactppError

if TYPE_CHECKING:
    from yolactpp.backbone.base import Backbone
    from yolactpp.config import BackboneConfig, ModelConfig

__all__ = [
    "UnknownModelError",
    "get_backbone_builder",
    "get_model_config",
    "list_backbones",
    "list_models",
    "register_backbone",
    "register_model",
    "reload_plugins",
]

logger = logging.getLogger(__name__)

ModelFactory = Callable[[], "ModelConfig"]
BackboneBuilder = Callable[["BackboneConfig"], "Backbone"]
F = TypeVar("F", bound=Callable[..., object])

MODEL_ENTRY_POINT_GROUP = "yolactpp.models"
BACKBONE_ENTRY_POINT_GROUP = "yolactpp.backbones"

_MODELS: dict[str, ModelFactory] = {}
_BACKBONES: dict[str, BackboneBuilder] = {}
_lock = threading.RLock()
_loaded_groups: set[str] = set()
_loading: set[str] = set()


class UnknownModelError(YolactppError, KeyError):
    """Raised for a model or backbone name that no registry knows; suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def _register(table: dict[str, Callable[..., object]], kind: str, name: str, fn: Callable[..., object], overwrite: bool) -> None:
    with _lock:
        if name in table and table[name] is not fn and not overwrite:
            raise InvalidArgumentError(f"{kind} {name!r} is already registered; pass overwrite=True to replace it")
        table[name] = fn


def register_model(fn: F | None = None, *, name: str | None = None, overwrite: bool = False) -> F | Callable[[F], F]:
    """Register a model-config factory (usable bare or with ``name=``/``overwrite=``)."""

    def decorator(func: F) -> F:
        _register(_MODELS, "model", name or func.__name__, func, overwrite)
        return func

    return decorator(fn) if fn is not None else decorator


def register_backbone(name: str, *, overwrite: bool = False) -> Callable[[F], F]:
    """Register a backbone builder under ``name``."""

    def decorator(func: F) -> F:
        _register(_BACKBONES, "backbone", name, func, overwrite)
        return func

    return decorator


def _load_builtins() -> None:
    # Importing these modules runs their registration decorators.
    import_module("yolactpp.backbone.resnet")
    import_module("yolactpp.backbone.darknet")
    import_module("yolactpp.zoo")


#: (group, entry point name, value) -> (table, name) pairs that entry point registered, so that an
#: uninstalled plugin's names can be dropped (a plugin module may fill both tables).
_PLUGIN_NAMES: dict[tuple[str, str, str], set[tuple[str, str]]] = {}


def _tables() -> dict[str, dict[str, Callable[..., object]]]:
    return {"model": _MODELS, "backbone": _BACKBONES}


def _load_entry_points(group: str, table: dict[str, Callable[..., object]], kind: str) -> None:
    tables = _tables()
    current = {(group, ep.name, ep.value): ep for ep in metadata.entry_points(group=group)}
    for key in [k for k in _PLUGIN_NAMES if k[0] == group and k not in current]:  # uninstalled since
        for table_kind, name in _PLUGIN_NAMES.pop(key):
            tables[table_kind].pop(name, None)
    for key, ep in current.items():
        if key in _PLUGIN_NAMES:
            continue
        before = {k: dict(t) for k, t in tables.items()}
        try:
            obj = ep.load()  # a module registers through its decorators; a callable is the factory
            if callable(obj):
                if ep.name in table and table[ep.name] is not obj:
                    raise InvalidArgumentError(
                        f"{kind} {ep.name!r} is already registered (by yolactpp or another plugin)"
                    )
                _register(table, kind, ep.name, obj, overwrite=False)
        except Exception as exc:  # a broken plugin must not break the library; it is retried on reload
            logger.warning("yolactpp: could not load %s plugin %r (%s): %s", kind, ep.name, ep.value, exc)
            for k, t in tables.items():
                t.clear()
                t.update(before[k])
            continue
        _PLUGIN_NAMES[key] = {(k, n) for k, t in tables.items() for n in t if before[k].get(n) is not t[n]}


def _load_once(group: str, load: Callable[[], None]) -> None:
    """Run ``load`` unless ``group`` is loaded or being loaded (a re-entrant lookup from a module
    being imported); mark it loaded only when ``load`` returns, so a failure is retried later."""
    if group in _loaded_groups or group in _loading:
        return
    _loading.add(group)
    try:
        load()
        _loaded_groups.add(group)
    finally:
        _loading.discard(group)


def _ensure_loaded() -> None:
    # If importing the built-ins (or scanning a plugin group) raises, the next lookup tries again
    # instead of finding a registry that stays empty for the life of the process. Single plugins
    # that fail are logged, left out and tried again by reload_plugins().
    with _lock:
        _load_once("builtins", _load_builtins)
        tables = _tables()
        _load_once(MODEL_ENTRY_POINT_GROUP, lambda: _load_entry_points(MODEL_ENTRY_POINT_GROUP, tables["model"], "model"))
        _load_once(
            BACKBONE_ENTRY_POINT_GROUP,
            lambda: _load_entry_points(BACKBONE_ENTRY_POINT_GROUP, tables["backbone"], "backbone"),
        )


def reload_plugins() -> None:
    """Scan the entry points again after installing or removing a plugin in a running interpreter.

    New plugins are loaded; names registered by plugins that are gone are dropped.
    """
    with _lock:
        _loaded_groups.discard(MODEL_ENTRY_POINT_GROUP)
        _loaded_groups.discard(BACKBONE_ENTRY_POINT_GROUP)
        _ensure_loaded()


def _unknown(kind: str, name: str, known: list[str]) -> UnknownModelError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownModelError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(sorted(known))}")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def get_model_config(name: str) -> "ModelConfig":
    """The config of a registered model; unknown names raise :class:`UnknownModelError`."""
    _ensure_loaded()
    try:
        factory = _MODELS[name]
    except KeyError:
        raise _unknown("model", name, list(_MODELS)) from None
    from yolactpp.config import ModelConfig

    cfg = factory()
    if not isinstance(cfg, ModelConfig):
        raise InvalidArgumentTypeError(f"model factory {name!r} returned {type(cfg).__name__}, expected ModelConfig")
    return cfg


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a shell-style ``pattern``, sorted."""
    _ensure_loaded()
    return sorted(n for n in _BACKBONES if fnmatch.fnmatch(n, pattern))


def get_backbone_builder(name: str) -> BackboneBuilder:
    """The builder registered for backbone ``name``."""
    _ensure_loaded()
    try:
        return _BACKBONES[name]
    except KeyError:
        raise _unknown("backbone", name, list(_BACKBONES)) from None
