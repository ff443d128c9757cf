"""The trainer on tiny runs: outputs, resume, NaN stop, Ctrl-C, output-folder guard, fine-tune surgery."""

from __future__ import annotations

import dataclasses
import json
import signal
from pathlib import Path

import pytest
import torch

from tests.train.conftest import data_pair
from tests.train.tiny import tiny_config
from yolactpp import YolactPP
from yolactpp.train import step as step_module
from yolactpp.train.checkpointing import OutputFolderError, RunFolder
from yolactpp.train.initialize import fine_tune_network, load_backbone_weights
from yolactpp.train.step import TrainingDivergedError
from yolactpp.train.trainer import Trainer

#: A run that takes seconds: 64 px images, batch 2, no loader processes, no progress bar.
QUICK = {"batch_size": 2, "workers": 0, "progress": False, "lr": 1e-3}


def _losses(output: Path) -> list[dict[str, float]]:
    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [line for line in lines if line.get("kind", "train") == "train"]


def test_run_writes_checkpoints_model_metrics_and_curves(tmp_path: Path, tiny_model: YolactPP, small_shapes) -> None:
    train, val = small_shapes
    out = tmp_path / "run"
    result = tiny_model.fit(data_pair(train), data_pair(val), output_dir=out, iterations=4, checkpoint_every=2, **QUICK)
    assert result.iteration == 4 and result.model_dir == out / "model"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["iter_0000002", "iter_0000004"]
    losses = _losses(out)
    assert [r["iteration"] for r in losses] == [1, 2, 3, 4]
    assert set(losses[0]) >= {"iteration", "lr", "time", "loss", "B", "C", "M", "S"}
    assert losses[0]["loss"] == pytest.approx(sum(losses[0][k] for k in "BCMS"), rel=1e-5)
    val_lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"val"' in line]
    assert len(val_lines) == 1 and {"box_AP50", "mask_AP50"} <= set(val_lines[0])
    assert result.validation is not None
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "run.json").read_text())["status"] == "finished"

    # The final model is the dataset's: its classes, its (non-contiguous) category ids, loadable.
    loaded = YolactPP.from_pretrained(result.model_dir)
    assert loaded.class_names == ("circle", "rectangle", "triangle")
    assert loaded.config.category_ids == (3, 7, 9)
    image = next(train.images.iterdir())
    detections = loaded.predict(str(image), conf_threshold=0.0)
    assert len(detections) > 0
    assert {r["category_id"] for r in detections.to_coco(1)} <= {3, 7, 9}
    checkpoint = YolactPP.from_pretrained(out / "checkpoints" / "iter_0000002")  # every checkpoint is a model folder
    assert checkpoint.class_names == loaded.class_names
    # The starting model was not modified.
    assert tiny_model.class_names == ("a", "b")


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """Send this process SIGINT (as Ctrl-C does) during step number ``calls``."""
    original = Trainer._step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            signal.raise_signal(signal.SIGINT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_step", step)


def test_interrupted_run_saves_a_checkpoint_and_resume_repeats_the_trajectory(
    tmp_path: Path, small_shapes, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = small_shapes
    options = {**QUICK, "iterations": 6, "checkpoint_every": 100, "seed": 5}

    def model() -> YolactPP:
        with torch.random.fork_rng():
            torch.manual_seed(1)
            return YolactPP(tiny_config())

    straight = tmp_path / "straight"
    model().fit(data_pair(train), output_dir=straight, **options)

    stopped = tmp_path / "stopped"
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            model().fit(data_pair(train), output_dir=stopped, **options)
    record = json.loads((stopped / "run.json").read_text())
    assert record["status"] == "stopped" and record["iteration"] == 3  # Ctrl-C saved iteration 3 first
    assert RunFolder(stopped).latest_checkpoint().iteration == 3  # type: ignore[union-attr]

    resumed = model().fit(data_pair(train), output_dir=stopped, resume=True, **options)
    assert resumed.iteration == 6
    a, b = _losses(straight), _losses(stopped)
    assert [r["iteration"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        for key in ("loss", "B", "C", "M", "S", "lr"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-9), (ra["iteration"], key)
    final_a = YolactPP.from_pretrained(straight / "model").network.state_dict()
    final_b = YolactPP.from_pretrained(stopped / "model").network.state_dict()
    assert all(torch.allclose(final_a[k], final_b[k], rtol=1e-5, atol=1e-7) for k in final_a)

    with pytest.raises(OutputFolderError, match="finished"):
        model().fit(data_pair(train), output_dir=stopped, resume=True, **options)
    with pytest.raises(OutputFolderError, match="seed was 5, now 6"):
        model().fit(data_pair(train), output_dir=tmp_path / "straight", resume=True, **{**options, "seed": 6})


def test_nan_loss_stops_naming_iteration_and_term_and_keeps_the_checkpoint(
    tmp_path: Path, tiny_model: YolactPP, small_shapes, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _ = small_shapes
    original = step_module.compute_losses
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        losses = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            losses["M"] = losses["M"] * float("nan")
            losses["total"] = losses["total"] + losses["M"]
        return losses

    monkeypatch.setattr(step_module, "compute_losses", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingDivergedError, match=r"mask loss \(M\) is nan at iteration 3") as info:
        tiny_model.fit(data_pair(train), output_dir=out, iterations=6, checkpoint_every=2, **QUICK)
    assert (info.value.iteration, info.value.term) == (3, "M")
    latest = RunFolder(out).latest_checkpoint()
    assert latest is not None and latest.iteration == 2
    YolactPP.from_pretrained(latest.path)  # still loads (finite weights)
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "iteration 3" in record["error"]


def test_output_folder_guard(tmp_path: Path, tiny_model: YolactPP, small_shapes) -> None:
    train, _ = small_shapes
    out = tmp_path / "run"
    tiny_model.fit(data_pair(train), output_dir=out, iterations=1, **QUICK)
    with pytest.raises(OutputFolderError, match=r"holds a finished run .*overwrite"):
        tiny_model.fit(data_pair(train), output_dir=out, iterations=1, **QUICK)
    mine = out / "notes.txt"
    mine.write_text("the user's file")
    tiny_model.fit(data_pair(train), output_dir=out, iterations=2, overwrite=True, **QUICK)
    assert mine.read_text() == "the user's file"  # overwrite removes the run's own files only
    assert [r["iteration"] for r in _losses(out)] == [1, 2]
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "metrics.jsonl").write_text("not ours")
    with pytest.raises(OutputFolderError, match=r"already has metrics\.jsonl"):
        tiny_model.fit(data_pair(train), output_dir=clash, iterations=1, **QUICK)
    with pytest.raises(OutputFolderError, match="nothing to resume"):
        tiny_model.fit(data_pair(train), output_dir=tmp_path / "empty", iterations=1, resume=True, **QUICK)


def test_class_count_surgery_reinitialises_only_class_dependent_layers() -> None:
    generator = torch.Generator().manual_seed(0)
    v1 = tiny_config(class_names=tuple("abcde"))
    plus = dataclasses.replace(v1, name="tiny_plus", maskiou_channels=(8, 16))
    for config in (v1, plus):
        network = YolactPP(config).network
        tuned, fresh = fine_tune_network(network, dataclasses.replace(config, class_names=("x", "y")), generator)
        expected = ["prediction_layers.0.conf_layer.bias", "prediction_layers.0.conf_layer.weight"]
        if config.use_maskiou:  # the re-scoring net's final per-class 1x1 conv
            expected = sorted([*expected, "maskiou_net.maskiou_net.4.bias", "maskiou_net.maskiou_net.4.weight"])
        assert list(fresh) == expected
        before, after = network.state_dict(), tuned.state_dict()
        for key, value in after.items():
            if key in fresh:
                assert value.shape[0] != before[key].shape[0]
            else:
                assert torch.equal(value, before[key]), key  # bit-identical
        assert tuned.prediction_layers[0].conf_layer.weight.abs().sum() > 0

    network = YolactPP(v1).network
    tuned, fresh = fine_tune_network(network, dataclasses.replace(v1, class_names=tuple("vwxyz")), generator)
    assert fresh == () and all(torch.equal(v, network.state_dict()[k]) for k, v in tuned.state_dict().items())


def test_imagenet_backbone_weights_are_key_mapped_and_mismatches_named() -> None:
    import torchvision

    from yolactpp.checkpoint import CheckpointError
    from yolactpp.registry import get_backbone_builder, get_model_config

    reference = torchvision.models.resnet50().state_dict()
    backbone = get_backbone_builder("resnet50")(get_model_config("yolact_plus_resnet50").backbone)  # with DCN
    load_backbone_weights(backbone, reference)
    ours = backbone.state_dict()
    assert torch.equal(ours["layers.0.0.conv1.weight"], reference["layer1.0.conv1.weight"])
    assert torch.equal(ours["layers.2.5.conv2.weight"], reference["layer3.5.conv2.weight"])  # a DCN layer
    assert torch.equal(ours["layers.3.0.downsample.1.running_var"], reference["layer4.0.downsample.1.running_var"])
    with pytest.raises(CheckpointError, match=r"missing key.*layers\.0\.0\.conv3\.weight"):
        load_backbone_weights(backbone, torchvision.models.resnet18().state_dict())


def test_bfloat16_autocast_on_cpu_and_float16_needs_cuda(tmp_path: Path, tiny_model: YolactPP, small_shapes) -> None:
    train, _ = small_shapes
    tiny_model.fit(data_pair(train), output_dir=tmp_path / "bf16", iterations=1, precision="bfloat16", **QUICK)
    (line,) = _losses(tmp_path / "bf16")
    assert all(torch.isfinite(torch.tensor(line[k])) for k in "BCMS")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"float16.*needs a CUDA device"):
            tiny_model.fit(data_pair(train), output_dir=tmp_path / "fp16", iterations=1, precision="float16", **QUICK)
