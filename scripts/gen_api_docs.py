"""Write docs/api.md, the API reference, from the public objects' signatures and docstrings.

Run ``python scripts/gen_api_docs.py`` after changing a public docstring or signature;
``tests/test_docs.py`` fails while docs/api.md differs from what this script renders.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "api.md"

#: (module, public names in reading order; None = the module's ``__all__``).
SECTIONS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("yolactpp.loading", ("load",)),
    ("yolactpp.model", ("YolactPP",)),
    ("yolactpp.predictor", ("Predictor", "above_score")),
    ("yolactpp.predict_options", ("PredictOptions", "InvalidOptionError", "OptionTypeError")),
    ("yolactpp.results", ("Detections", "DetectionArrays")),
    ("yolactpp.classes", ("COCO_CLASSES", "COCO_CATEGORY_IDS", "resolve_class_ids")),
    ("yolactpp.coco", None),
    ("yolactpp.plotting", None),
    ("yolactpp.video", None),
    ("yolactpp.live", None),
    ("yolactpp.tracking", None),
    ("yolactpp.polygons", None),
    ("yolactpp.evaluate", None),
    ("yolactpp.train.options", ("TrainOptions",)),
    ("yolactpp.train.trainer", ("Trainer", "TrainResult")),
    ("yolactpp.train.step", ("TrainingDivergedError",)),
    ("yolactpp.train.checkpointing", ("RunFolder", "Checkpoint", "OutputFolderError")),
    ("yolactpp.benchmark", None),
    ("yolactpp.preprocess", ("load_image", "decode_image", "to_rgb_array", "InvalidImageError", "ImageTooLargeError")),
    ("yolactpp.errors", None),
    ("yolactpp.concurrency", ("ModelBusyError",)),
    ("yolactpp.checkpoint", ("CheckpointError", "LoadedWeights", "read_original", "UnnamedClassesWarning")),
    ("yolactpp.pretrained", ("load_network", "read_weights", "pretrained_dir")),
    ("yolactpp.builder", ("build_network",)),
    ("yolactpp.registry", ("list_models", "get_model_config", "register_model", "register_backbone", "UnknownModelError")),
    ("yolactpp.config", ("ModelConfig", "BackboneConfig", "PreprocessConfig", "AnchorConfig", "DetectConfig", "ConfigError")),
    ("yolactpp.hub", None),
    ("yolactpp.converted", None),
    ("yolactpp.manifest", ("ManifestEntry", "load_manifest")),
    ("yolactpp.serialization", None),
    ("yolactpp.ops", None),
    ("yolactpp.export", ("export_onnx", "export_pt2", "load_exported", "ExportedModel", "ExportInfo", "ExportError", "ExportFormatError")),
    ("yolactpp.runtime", ("Runtime", "open_runtime")),
    ("yolactpp.runtime.int8", ("int8_support", "Int8Support", "SlowInt8Warning")),
    ("yolactpp.integrations.ray", ("predict_dataset", "read_image_files", "Predictor")),  # schema: docs/ray.md
)


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    text = value if isinstance(value, str) else inspect.formatannotation(value)
    if len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":  # forward references
        text = text[1:-1]
    return text


def _signature(obj: Any) -> str:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parts = []
    seen_kw_only = False
    for i, p in enumerate(sig.parameters.values()):
        if i == 0 and p.name in ("self", "cls"):
            continue
        if p.kind is p.KEYWORD_ONLY and not seen_kw_only:
            parts.append("*")
            seen_kw_only = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        if p.kind is p.VAR_POSITIONAL:
            seen_kw_only = True
        ann = _annotation(p.annotation)
        if ann:
            text += f": {ann}"
        if p.default is not p.empty:
            default = repr(p.default)
            if len(default) > 60 and isinstance(p.default, (tuple, list)):
                default = f"({len(p.default)} items)"
            text += f" = {default}" if ann else f"={default}"
        parts.append(text)
    ret = _annotation(sig.return_annotation)
    return f"({', '.join(parts)})" + (f" -> {ret}" if ret else "")


_ROLE = re.compile(r":(?:meth|class|func|attr|mod|data|exc):`~?([^`]+)`")


def _doc(obj: Any) -> str:
    """The docstring with Sphinx roles reduced to plain code spans."""
    doc = inspect.getdoc(obj) or ""
    return _ROLE.sub(r"``\1``", doc).strip()


def _is_documented_member(cls: type, name: str, value: Any) -> bool:
    if name.startswith("_") and name != "__getitem__":
        return False
    func = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
    overrides = any(name in vars(base) for base in cls.__mro__[1:])
    if overrides and not getattr(func, "__doc__", None):  # e.g. nn.Module hooks, documented upstream
        return False
    if dataclasses.is_dataclass(cls) and name in {f.name for f in dataclasses.fields(cls)}:
        return False
    return isinstance(value, (property, classmethod, staticmethod)) or inspect.isfunction(value)


def _members(cls: type) -> dict[str, tuple[type, Any]]:
    """The class's own members and those it inherits from yolactpp classes (e.g. ``predict`` from
    :class:`yolactpp.predictor.Predictor`), each with the class that defines it."""
    members: dict[str, tuple[type, Any]] = {}
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != "yolactpp":
            continue
        for name, value in vars(klass).items():
            members.setdefault(name, (klass, value))
    return members


def _render_class(qualname: str, cls: type) -> list[str]:
    if issubclass(cls, BaseException):
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        return [f"### exception `{qualname}({bases})`", "", _doc(cls), ""]
    lines = [f"### class `{qualname}`", "", f"```python\n{cls.__name__}{_signature(cls)}\n```", ""]
    if _doc(cls):
        lines += [_doc(cls), ""]
    for name, (owner, value) in _members(cls).items():
        if not _is_documented_member(owner, name, value):
            continue
        if isinstance(value, property):
            lines += [f"#### property `{cls.__name__}.{name}`", ""]
            target = value.fget
        else:
            func = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
            kind = "classmethod " if isinstance(value, classmethod) else ""
            lines += [f"#### {kind}`{cls.__name__}.{name}{_signature(func)}`", ""]
            target = func
        if _doc(target):
            lines += [_doc(target), ""]
    return lines


def _render_object(module: str, name: str, obj: Any) -> list[str]:
    if inspect.isclass(obj):
        return _render_class(f"{module}.{name}", obj)
    if typing.get_origin(obj) is not None:
        parts = typing.get_args(obj) if typing.get_origin(obj) is typing.Union else (obj,)
        text = " | ".join(inspect.formatannotation(p).replace("collections.abc.", "") for p in parts)
        return [f"### type `{module}.{name}`", "", f"`{text}`", ""]
    if callable(obj):
        lines = [f"### `{module}.{name}{_signature(obj)}`", ""]
        return lines + ([_doc(obj), ""] if _doc(obj) else [])
    if isinstance(obj, (tuple, list)):
        kinds = sorted({type(v).__name__ for v in obj})
        return [f"### `{module}.{name}`", "", f"A {type(obj).__name__} of {len(obj)} `{' | '.join(kinds)}`.", ""]
    return [f"### `{module}.{name}`", "", f"`{obj!r}`", ""]


def render() -> str:
    """The full text of docs/api.md."""
    lines = [
        "# API reference",
        "",
        "<!-- Generated by scripts/gen_api_docs.py from the docstrings; do not edit by hand. -->",
        "",
        "Everything below is importable from its module; the main classes also from `yolactpp` itself",
        "(`from yolactpp import YolactPP, Detections`).",
        "",
    ]
    for module_name, names in SECTIONS:
        module = importlib.import_module(module_name)
        lines += [f"## `{module_name}`", ""]
        summary = _doc(module).split("\n\n")[0]
        if summary:
            lines += [summary, ""]
        for name in names if names is not None else module.__all__:
            lines += _render_object(module_name, name, getattr(module, name))
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale; run: python scripts/gen_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
