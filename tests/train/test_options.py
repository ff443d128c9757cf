"""TrainOptions: checked when built, unknown keywords named; the learning-rate schedule."""

from __future__ import annotations

import pytest
import torch

from yolactpp.predict_options import InvalidOptionError, OptionTypeError
from yolactpp.train.options import ORIGINAL_LR_STEPS, TrainOptions
from yolactpp.train.schedule import learning_rate, set_learning_rate


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("iterations", 0, "iterations must be >= 1"),
        ("batch_size", 2.5, "batch_size must be an integer"),
        ("lr", -1e-3, "lr must be > 0"),
        ("lr", float("nan"), "lr must be > 0"),
        ("momentum", 1.0, "momentum must be in [0, 1)"),
        ("lr_steps", (0.8, 0.5), "lr_steps must increase"),
        ("lr_steps", (0.5, 1.5), "lr_steps are fractions"),
        ("precision", "float64", "precision must be one of"),
        ("grad_clip", 0, "grad_clip must be > 0"),
        ("workers", -1, "workers must be >= 0"),
        ("resume", "yes", "resume must be True or False"),
        ("checkpoint_every", True, "checkpoint_every must be an integer"),
    ],
)
def test_bad_values_are_named(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        TrainOptions(**{field: value})


def test_build_names_unknown_keywords_and_overrides() -> None:
    with pytest.raises(OptionTypeError, match=r"unknown training option\(s\) \['iteration'\]"):
        TrainOptions.build(iteration=10)
    with pytest.raises(OptionTypeError, match="must be a TrainOptions"):
        TrainOptions.build({"iterations": 10})  # type: ignore[arg-type]
    base = TrainOptions(iterations=100)
    assert TrainOptions.build(base) is base
    assert TrainOptions.build(base, lr=0.01) == TrainOptions(iterations=100, lr=0.01)
    with pytest.raises(InvalidOptionError, match="exclude each other"):
        TrainOptions(resume=True, overwrite=True)


def test_warmup_and_steps_scale_with_the_run() -> None:
    long = TrainOptions(iterations=800_000)
    assert long.warmup == 500
    assert long.step_iterations == (280_000, 600_000, 700_000, 750_000)  # the original's steps
    short = TrainOptions(iterations=200)
    assert short.warmup == 20  # capped at a tenth of a short run
    assert short.step_iterations == (70, 150, 175, 188)
    assert TrainOptions(iterations=200, warmup_iterations=0).warmup == 0
    assert TrainOptions().lr_steps == ORIGINAL_LR_STEPS


def test_schedule_warms_up_then_decays() -> None:
    options = TrainOptions(iterations=1000, lr=1e-3, warmup_lr=1e-4, warmup_iterations=100, lr_steps=(0.5, 0.8), gamma=0.1)
    assert learning_rate(0, options) == pytest.approx(1e-4)
    assert learning_rate(50, options) == pytest.approx(5.5e-4)
    assert learning_rate(100, options) == pytest.approx(1e-3)
    assert learning_rate(499, options) == pytest.approx(1e-3)
    assert learning_rate(500, options) == pytest.approx(1e-4)
    assert learning_rate(800, options) == pytest.approx(1e-5)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    set_learning_rate(optimizer, 0.25)
    assert optimizer.param_groups[0]["lr"] == 0.25


def test_to_dict_is_json_ready() -> None:
    import json

    data = TrainOptions(output_dir="runs/x", backbone_weights="r50.pth").to_dict()
    assert json.loads(json.dumps(data))["output_dir"] == "runs/x"
    assert data["lr_steps"] == list(ORIGINAL_LR_STEPS)
