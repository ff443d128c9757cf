"""Every default of the prediction options, the detection config and the CLI, pinned (issue 23).

The values are written out here, from the documentation (docs/cli.md, docs/deploy.md,
docs/ray.md, the help texts) and, for detection, from the original implementation (Detect:
top_k 200, conf_thresh 0.05, nms_thresh 0.5, max 100 detections). A default that changes, or a
help text that stops telling the truth, fails here; so does a new CLI default nobody pinned.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from yolactpp import PredictOptions
from yolactpp.cli import build_parser
from yolactpp.cli._common import predict_options
from yolactpp.config import DetectConfig

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_DETECT = {"conf_threshold": 0.05, "iou_threshold": 0.5, "top_k": 200, "max_detections": 100}


def test_prediction_option_and_detection_defaults() -> None:
    assert {name: getattr(PredictOptions(), name) for name in PredictOptions.names()} == {
        "score_threshold": 0.0, "top_k": None, "conf_threshold": None, "iou_threshold": None,
        "max_detections": None, "classes": None,
    }  # fmt: skip
    assert DetectConfig() == DetectConfig(**ORIGINAL_DETECT)
    from yolactpp import zoo
    from yolactpp.registry import get_model_config

    assert len(zoo.__all__) == 6
    for name in zoo.__all__:
        assert get_model_config(name).detect == DetectConfig(**ORIGINAL_DETECT), name
    resolved = PredictOptions().resolve(DetectConfig(), ("a", "b"))
    assert resolved.settings == DetectConfig(**ORIGINAL_DETECT)
    assert resolved.score_threshold == 0.0 and resolved.class_ids is None


def test_predict_keeps_every_detection_by_default(small_pp_model) -> None:
    """score_threshold 0 keeps all up to the cap of 100, including detections scored 0."""
    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    everything = small_pp_model.predict(image)
    assert len(everything) == 100
    assert float(everything.scores.min()) < 0.05  # below any threshold one might have defaulted to
    assert len(small_pp_model.predict(image, score_threshold=0.15)) < 100


def test_streaming_export_and_quantize_defaults() -> None:
    from yolactpp.export.onnx_export import export_onnx
    from yolactpp.export.pt2 import export_pt2
    from yolactpp.model import YolactPP
    from yolactpp.quantize import DEFAULT_CALIBRATION_COUNT, calibration_images
    from yolactpp.tracking import Tracker

    def defaults(fn) -> dict:
        return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}

    assert defaults(YolactPP.iter_predict) == {"batch_size": 1, "options": None, "track": False, "on_error": "raise"}
    assert defaults(export_onnx) == {
        "opset": 22, "dtype": "float32", "max_detections": None, "top_k": None, "deform_conv": "DeformConv",
        "overwrite": False, "verify": True,
    }  # fmt: skip
    assert defaults(export_pt2) == {
        "dtype": "float32", "max_detections": None, "top_k": None, "device": "cpu", "overwrite": False, "verify": True,
    }  # fmt: skip
    assert DEFAULT_CALIBRATION_COUNT == 32
    assert len(calibration_images([np.zeros((4, 4, 3), np.uint8)] * 40)) == 32
    assert defaults(Tracker) == {"frame_rate": 30.0}
    # the Ray entry point without importing ray: read its signature from the source
    tree = ast.parse((ROOT / "src/yolactpp/integrations/ray/dataset.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "predict_dataset")
    kw = {a.arg: ast.literal_eval(d) for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults) if d is not None}
    assert kw["batch_size"] == 4 and kw["cpus_per_actor"] == 1 and kw["num_gpus"] == 0


#: (command, option) -> (parsed default, the defaults its help text states). Every option with a
#: default or a documented default is listed; derived ones are checked against their source below.
CLI_DEFAULTS = {
    ("predict", "--device"): (None, ["cuda if available, else cpu"]),
    ("predict", "--dtype"): ("float32", ["float32"]),
    ("predict", "--score-threshold"): (0.15, ["0.15"]),
    ("predict", "--max-detections"): (None, ["100"]),
    ("predict", "--batch-size"): (1, ["1"]),
    ("predict", "--output"): (None, ["next free runs/predict, runs/predict2, ...", "runs/predict*/results.parquet"]),
    ("predict", "--strict"): (False, ["report it on stderr, go on with the others, and fail only when none can be read"]),
    ("predict", "--max-image-pixels"): (None, ["89478485"]),
    ("predict", "--engine"): ("local", []),
    ("predict", "--address"): (None, ["start a local one"]),
    ("predict", "--concurrency"): (None, ["as many as the cluster's CPUs or GPUs allow"]),
    ("predict", "--threads"): (None, ["1"]),
    ("eval", "--device"): (None, ["cuda if available, else cpu"]),
    ("eval", "--dtype"): ("float32", ["float32"]),
    ("eval", "--batch-size"): (1, ["1"]),
    ("benchmark", "--device"): (None, ["cuda if available, else cpu"]),
    ("benchmark", "--dtype"): ("float32", ["float32"]),
    ("benchmark", "--also"): ([], []),
    ("benchmark", "--threads"): (None, ["the runtime's"]),
    ("benchmark", "--image"): (None, ["a synthetic image of --image-size"]),
    ("benchmark", "--image-size"): ((720, 1280), ["1280x720"]),
    ("benchmark", "--batch-size"): (1, ["1"]),
    ("benchmark", "--warmup"): (2, ["2"]),
    ("benchmark", "--reps"): (10, ["10"]),
    ("models", "pattern"): ("*", ["all"]),
    ("export", "--format"): ("onnx", ["onnx"]),
    ("export", "--output"): (None, ["<config>.<format>"]),
    ("export", "--dtype"): ("float32", ["float32"]),
    ("export", "--opset"): (22, ["22"]),
    ("export", "--max-detections"): (None, ["the config's, 100"]),
    ("export", "--top-k"): (None, ["the config's, 200"]),
    ("export", "--device"): ("cpu", ["cpu"]),
    ("quantize", "--calibration"): (None, ["five public-domain photographs shipped with scikit-image"]),
    ("quantize", "--count"): (None, ["32"]),
    ("quantize", "--output"): (None, ["<config>-int8.onnx"]),
    ("quantize", "--threads"): (None, ["all cores"]),
    ("quantize", "--weight-bits"): (None, ["8 on a CPU with int8 dot products, else 7"]),
    ("train", "--batch-size"): (8, ["8"]),
    ("train", "--checkpoint-every"): (1000, []),
    ("train", "--device"): (None, ["cuda if available, else cpu"]),
    ("train", "--engine"): ("local", ["local"]),
    ("train", "--gamma"): (0.1, ["0.1"]),
    ("train", "--grad-clip"): (None, ["off"]),
    ("train", "--lr"): (0.001, ["1e-3"]),
    ("train", "--lr-steps"): (None, ["0.35,0.75,0.875,0.9375"]),
    ("train", "--max-failures"): (3, ["3"]),
    ("train", "--momentum"): (0.9, ["0.9"]),
    ("train", "--num-workers"): (1, []),
    ("train", "--precision"): ("float32", ["float32"]),
    ("train", "--storage"): (None, ["OUTPUT/ray"]),
    ("train", "--trainable-batchnorm"): (False, ["frozen, as the original"]),
    ("train", "--val-every"): (None, ["at the end"]),
    ("train", "--warmup-iterations"): (None, ["500, at most a tenth of the run"]),
    ("train", "--weight-decay"): (0.0005, []),
    ("train", "--workers"): (2, ["2"]),
}  # fmt: skip
_STATED = re.compile(r"\(default:? ([^;)]*)")


def _cli_defaults() -> dict[tuple[str, str], tuple[object, list[str]]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = {}
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = action.help % {**vars(action), "prog": subparser.prog} if action.help else ""
            stated = _STATED.findall(text)
            if action.default not in (None, False) or stated:
                name = action.option_strings[-1] if action.option_strings else action.dest
                found[(command, name)] = (action.default, stated)
    return found


def test_every_cli_default_and_its_help_text_is_pinned() -> None:
    found = _cli_defaults()
    assert sorted(set(found) - set(CLI_DEFAULTS)) == [], "a CLI default nobody pinned: add it to CLI_DEFAULTS"
    assert sorted(set(CLI_DEFAULTS) - set(found)) == [], "a pinned CLI default is gone"
    for key, (default, stated) in CLI_DEFAULTS.items():
        assert found[key] == (default, stated), key
    # documented numbers that come from elsewhere, against their source
    from PIL import Image

    from yolactpp.quantize import DEFAULT_CALIBRATION_COUNT

    assert int(CLI_DEFAULTS[("predict", "--max-image-pixels")][1][0]) == Image.MAX_IMAGE_PIXELS
    assert int(CLI_DEFAULTS[("predict", "--max-detections")][1][0]) == DetectConfig().max_detections
    assert CLI_DEFAULTS[("export", "--top-k")][1][0].endswith(str(DetectConfig().top_k))
    assert int(CLI_DEFAULTS[("quantize", "--count")][1][0]) == DEFAULT_CALIBRATION_COUNT
    # yolactpp train's defaults are TrainOptions' (the original's SGD settings), and its stated ones say so
    from yolactpp.train.options import TrainOptions

    options = TrainOptions()
    for flag, field in [
        ("--batch-size", "batch_size"), ("--checkpoint-every", "checkpoint_every"), ("--engine", "engine"),
        ("--gamma", "gamma"), ("--lr", "lr"), ("--max-failures", "max_failures"), ("--momentum", "momentum"),
        ("--num-workers", "num_workers"), ("--precision", "precision"), ("--weight-decay", "weight_decay"),
        ("--workers", "workers"),
    ]:
        assert CLI_DEFAULTS[("train", flag)][0] == getattr(options, field), flag
    assert (options.lr, options.momentum, options.weight_decay, options.gamma) == (1e-3, 0.9, 5e-4, 0.1)
    stated_steps = CLI_DEFAULTS[("train", "--lr-steps")][1][0]
    assert tuple(float(x) for x in stated_steps.split(",")) == options.lr_steps


def test_cli_predict_builds_the_documented_options() -> None:
    args = build_parser().parse_args(["predict", "img.png", "-m", "weights.pth"])
    assert predict_options(args) == PredictOptions(score_threshold=0.15)
    assert args.engine == "local" and args.batch_size == 1 and not args.track


@pytest.mark.parametrize(
    ("doc", "phrase", "value"),
    [
        ("docs/cli.md", "`--score-threshold S` keeps detections whose final score is above `S` (default 0.15;", 0.15),
        ("docs/cli.md", "at most `--count`, default 32,", 32),
        ("docs/deploy.md", "(>= 19, default 22)", 22),
        ("docs/deploy.md", "`top_k` (default 100 / 200:", (100, 200)),
        ("docs/ray.md", "images per `predict` call in an actor (default 4)", 4),
        ("docs/ray.md", "`score_threshold=0` keeps all up to 100 detections", (0.0, 100)),
    ],
)
def test_documented_defaults_match_the_code(doc: str, phrase: str, value: object) -> None:
    text = " ".join((ROOT / doc).read_text().split())  # the phrase may be wrapped over lines
    assert phrase in text, f"{doc} no longer states {phrase!r}"
    code = {
        0.15: build_parser().parse_args(["predict", "x", "-m", "y"]).score_threshold,
        32: __import__("yolactpp.quantize", fromlist=["x"]).DEFAULT_CALIBRATION_COUNT,
        22: inspect.signature(__import__("yolactpp.export.onnx_export", fromlist=["x"]).export_onnx).parameters[
            "opset"
        ].default,
        (100, 200): (DetectConfig().max_detections, DetectConfig().top_k),
        4: 4,  # pinned against the signature in test_streaming_export_and_quantize_defaults
        (0.0, 100): (PredictOptions().score_threshold, DetectConfig().max_detections),
    }[value]  # type: ignore[index]
    assert code == value
