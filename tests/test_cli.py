"""The ``yolactpp`` command end to end on an oracle checkpoint and the test images.

One real ``python -m yolactpp`` subprocess proves the entry point; the other runs call
``yolactpp.cli.main`` in-process (same code path, without paying for a fresh torch import).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

import yolactpp
from yolactpp.classes import COCO_CATEGORY_IDS, COCO_CLASSES
from yolactpp.cli import main
from yolactpp.coco import decode_mask_rle

SCORE = 0.7  # filters: the landscape image's test-model scores run from 0.51 to 0.83 (the square's are all above)


def _env() -> dict[str, str]:
    """Environment for a subprocess that imports the same yolactpp as this test run."""
    src = str(Path(yolactpp.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _coco_gt(images: list[dict], annotations: list[dict] | None = None) -> COCO:
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations or [],
        "categories": [{"id": c, "name": n} for c, n in zip(COCO_CATEGORY_IDS, COCO_CLASSES)],
    }
    gt.createIndex()
    return gt


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory, landscape_path: Path, square_path: Path) -> Path:
    folder = tmp_path_factory.mktemp("images")
    for path in (landscape_path, square_path):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def predict_run(image_dir: Path, v1_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("run") / "out"
    cmd = [sys.executable, "-m", "yolactpp", "predict", str(image_dir), "-m", str(v1_checkpoint)]
    cmd += ["--score-threshold", str(SCORE), "--save-masks", "--batch-size", "2", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    return proc, out


def test_predict_writes_json_and_annotated_images(predict_run, image_dir: Path, landscape_det, square_det) -> None:
    proc, out = predict_run
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "landscape_1280x720.json", "landscape_1280x720.png", "masks", "predictions.json",
        "square_550x550.json", "square_550x550.png",
    ]  # fmt: skip
    assert "results saved to" in proc.stdout
    for name, det in (("landscape_1280x720", landscape_det), ("square_550x550", square_det)):
        expected = det[det.scores > SCORE]  # = predict(score_threshold=SCORE), which keeps scores above it
        if name.startswith("landscape"):
            assert 0 < len(expected) < len(det)  # the threshold has something to remove
        data = json.loads((out / f"{name}.json").read_text())
        assert data["image_size"] == {"height": det.image_size[0], "width": det.image_size[1]}
        rows = data["detections"]
        assert [r["class_name"] for r in rows] == expected.class_names
        np.testing.assert_allclose([r["box"] for r in rows], expected.boxes.numpy(), atol=1e-3)
        assert np.array_equal(decode_mask_rle(rows[0]["mask"]), expected.masks[0].numpy())
        assert f"{name}.png: {len(expected)} detections" in proc.stdout
        with Image.open(out / f"{name}.png") as annotated, Image.open(image_dir / f"{name}.png") as source:
            assert annotated.size == source.size
            assert not np.array_equal(np.asarray(annotated.convert("RGB")), np.asarray(source.convert("RGB")))
        mask_files = sorted((out / "masks" / name).iterdir())
        assert len(mask_files) == len(expected)
        assert np.array_equal(np.asarray(Image.open(mask_files[0])) > 0, expected.masks[0].numpy())


def test_predictions_json_is_accepted_by_pycocotools(predict_run, landscape_det, square_det) -> None:
    _, out = predict_run
    records = json.loads((out / "predictions.json").read_text())
    # image ids: the position in the (sorted) input list, since the file stems are not numbers
    gt = _coco_gt([{"id": 1, "height": 720, "width": 1280}, {"id": 2, "height": 550, "width": 550}])
    dt = gt.loadRes(records)
    for image_id, det in ((1, landscape_det), (2, square_det)):
        expected = det[det.scores > SCORE]
        wanted = expected.to_coco(image_id, kind="bbox")
        anns = dt.loadAnns(dt.getAnnIds(imgIds=[image_id]))
        assert len(anns) == len(wanted) > 0
        assert [(a["category_id"], a["bbox"]) for a in anns] == [(r["category_id"], r["bbox"]) for r in wanted]
        first = dt.annToMask(anns[0]).astype(bool)  # pycocotools' own decoding of the written RLE
        assert np.array_equal(first, expected.masks[0].numpy())


def test_default_output_folders_count_up_and_classes_filter(image_dir: Path, v1_checkpoint: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["-m", str(v1_checkpoint), "--no-plot", "-q", "--score-threshold", "0"]
    assert main(["predict", str(image_dir / "*.png"), *args, "--classes", "frisbee,sink"]) == 0
    assert main(["predict", str(image_dir / "square*"), *args, "--classes", "29", "--max-detections", "5"]) == 0
    first, second = tmp_path / "runs" / "predict", tmp_path / "runs" / "predict2"
    assert sorted(p.name for p in first.iterdir()) == ["landscape_1280x720.json", "predictions.json", "square_550x550.json"]
    assert sorted(p.name for p in second.iterdir()) == ["predictions.json", "square_550x550.json"]
    names = {r["class_name"] for r in json.loads((first / "landscape_1280x720.json").read_text())["detections"]}
    assert names and names <= {"frisbee", "sink"}
    rows = json.loads((second / "square_550x550.json").read_text())["detections"]
    assert len(rows) == 5 and {r["class_name"] for r in rows} == {"frisbee"}
    assert capsys.readouterr().out == ""  # --quiet


def _write_video(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _read_video(path: Path) -> tuple[list[np.ndarray], Fraction]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], Fraction(stream.average_rate)


def test_video_round_trip(landscape_path: Path, v1_checkpoint: Path, v1_model, tmp_path: Path, capsys) -> None:
    pytest.importorskip("av")
    source = np.asarray(Image.open(landscape_path).convert("RGB").resize((160, 96)))
    frames = [np.roll(source, 8 * i, axis=1) for i in range(6)]
    video = tmp_path / "clip.mp4"
    _write_video(video, frames, fps=5)
    out = tmp_path / "out"
    args = ["predict", str(video), "-m", str(v1_checkpoint), "-o", str(out), "--batch-size", "4", "--score-threshold", "0.6"]
    assert main(args) == 0
    assert f"{video}: 6 frames" in capsys.readouterr().out
    annotated, fps = _read_video(out / "clip.mp4")
    assert len(annotated) == 6 and fps == 5
    assert annotated[0].shape == (96, 160, 3)
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    assert lines[5]["time"] == pytest.approx(1.0)
    assert all(line["image_size"] == {"height": 96, "width": 160} for line in lines)
    # --score-threshold reached the video path: every frame's count equals predict's with the option
    from yolactpp.video import read_frames

    first = v1_model.predict(next(read_frames(video)))  # the frame exactly as the command decoded it
    assert len(lines[0]["detections"]) == int((first.scores > 0.6).sum()) < len(first)
    assert all(d["score"] > 0.6 for line in lines for d in line["detections"])
    assert sum(len(line["detections"]) for line in lines) > 0


def _ground_truth(dets: list, score: float) -> dict:
    """COCO ground truth = the detections above ``score``, for the classes whose every such
    detection has a non-empty box and mask (a synthetic model also makes empty ones, which
    could never be matched)."""
    images, candidates = [], []
    for image_id, (name, det) in enumerate(dets, start=1):
        h, w = det.image_size
        images.append({"id": image_id, "file_name": name, "height": h, "width": w})
        records = det[det.scores > score].to_coco(image_id, skip_empty=False)
        candidates += records
    def usable(r: dict) -> bool:
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        return r["bbox"][2] * r["bbox"][3] > 0 and mask_util.area(rle) > 0
    bad = {r["category_id"] for r in candidates if not usable(r)}
    annotations = []
    for r in candidates:
        if r["category_id"] in bad:
            continue
        rle = {"size": r["segmentation"]["size"], "counts": r["segmentation"]["counts"].encode()}
        annotations.append({
            "id": len(annotations) + 1, "image_id": r["image_id"], "category_id": r["category_id"],
            "bbox": r["bbox"], "segmentation": r["segmentation"], "area": float(mask_util.area(rle)), "iscrowd": 0,
        })  # fmt: skip
    assert annotations, "no usable ground truth"
    categories = [{"id": c, "name": n} for c, n in zip(COCO_CATEGORY_IDS, COCO_CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def _ap_table(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.split()[:1] in (["box"], ["mask"])}


def test_eval_scores_own_predictions_perfectly_and_perturbed_ones_lower(
    image_dir: Path, v1_checkpoint: Path, square_det, landscape_det, tmp_path: Path, capsys
) -> None:
    gt = _ground_truth([("square_550x550.png", square_det), ("landscape_1280x720.png", landscape_det)], 0.3)
    exact = tmp_path / "exact.json"
    exact.write_text(json.dumps(gt))
    base = ["eval", "-m", str(v1_checkpoint), "--images", str(image_dir), "-q"]
    assert main([*base, "--annotations", str(exact), "--save-results", str(tmp_path / "res.json")]) == 0
    out = capsys.readouterr().out
    assert "yolact_resnet50 on 2 images" in out
    table = _ap_table(out)
    assert table["box"][:3] == ["100.00"] * 3 and table["mask"][:3] == ["100.00"] * 3
    assert json.loads((tmp_path / "res.json").read_text())

    # move every second annotation of image 1 far away (box and mask): those become misses
    perturbed = json.loads(json.dumps(gt))
    for ann in [a for a in perturbed["annotations"] if a["image_id"] == 1][::2]:
        mask = decode_mask_rle(ann["segmentation"])
        shift = 275
        ann["segmentation"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in mask_util.encode(
            np.asfortranarray(np.roll(mask, shift, axis=1).astype(np.uint8))).items()}  # fmt: skip
        ann["bbox"] = [(ann["bbox"][0] + shift) % 550, *ann["bbox"][1:]]
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(perturbed))
    assert main([*base, "--annotations", str(moved), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "on 1 image " in out
    table = _ap_table(out)
    assert 0 < float(table["box"][0]) < 100 and 0 < float(table["mask"][0]) < 100


def test_benchmark_prints_a_latency_row(v1_checkpoint: Path, capsys) -> None:
    args = ["benchmark", "-m", str(v1_checkpoint), "--image-size", "64x48", "--warmup", "0", "--reps", "1"]
    assert main(args) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:6] == ["model", "runtime", "device", "dtype", "batch", "image"] and "median" in header
    assert row.split()[:7] == ["yolact_resnet50", "torch", "cpu", "float32", "1", "64x48", "1"]
    median_ms, p90_ms, per_second = (float(v) for v in row.split()[7:10])
    assert median_ms > 0 and p90_ms == median_ms  # one repetition: its time is both
    assert per_second == pytest.approx(1000 / median_ms, rel=0.01, abs=0.006)  # batch 1, printed to 2 decimals


def test_benchmark_writes_json_rows_per_dtype(v1_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """--also WEIGHTS@DTYPE times another dtype in the same run; --json keeps every row, never overwrites."""
    out = tmp_path / "bench.json"
    args = ["benchmark", "-m", str(v1_checkpoint), "--image-size", "64x48", "--warmup", "0", "--reps", "1"]
    args += ["--batch-size", "2", "--also", f"{v1_checkpoint}@bfloat16", "--json", str(out)]
    assert main(args) == 0
    rows = json.loads(out.read_text())
    assert [(r["dtype"], r["batch_size"], r["reps"]) for r in rows] == [("float32", 2, 1), ("bfloat16", 2, 1)]
    assert all(r["model"] == "yolact_resnet50" and r["median_ms"] > 0 and r["image_size"] == "64x48" for r in rows)
    capsys.readouterr()
    _one_line_error(capsys, args, "--json", "exists")
    assert json.loads(out.read_text()) == rows  # untouched
    _one_line_error(capsys, [*args[:-1], str(tmp_path / "no" / "b.json")], "does not exist")


def test_benchmark_also_accepts_every_dtype() -> None:
    import argparse

    from yolactpp.cli.benchmark import _model_arguments

    args = argparse.Namespace(model="a.pth", dtype="float32", also=["b.pth@float16", "c.pth@bfloat16", "d.onnx"])
    specs = _model_arguments(args)
    assert [(s.model, s.dtype) for s in specs] == [("a.pth", "float32"), ("b.pth", "float16"), ("c.pth", "bfloat16"), ("d.onnx", "float32")]


def _one_line_error(capsys, args: list[str], *needles: str) -> None:
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("yolactpp") and "error:" in lines[0]
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, landscape_path: Path, v1_checkpoint: Path, capsys) -> None:
    ckpt, image = str(v1_checkpoint), str(landscape_path)
    _one_line_error(capsys, ["predict", str(tmp_path / "missing.png"), "-m", ckpt], "no such file", "missing.png")
    _one_line_error(capsys, ["predict", str(tmp_path / "*.jpg"), "-m", ckpt], "no images or videos match")
    _one_line_error(capsys, ["predict", str(tmp_path), "-m", ckpt], "no images or videos in folder")
    _one_line_error(capsys, ["predict", image, "-m", str(tmp_path / "yolact_resnet50_1_2.pth")], "no file or directory", "yolact_resnet50_1_2.pth")
    _one_line_error(capsys, ["predict", image, "-m", ckpt, "--score-threshold", "2"], "--score-threshold", "between 0 and 1")
    _one_line_error(capsys, ["predict", image, "-m", ckpt, "--batch-size", "0"], "--batch-size", ">= 1")
    _one_line_error(capsys, ["predict", image], "-m/--model")
    _one_line_error(capsys, ["predict", image, "-m", ckpt, "--dtype", "int8"], "--dtype")
    _one_line_error(capsys, ["frobnicate"], "invalid choice")
    _one_line_error(capsys, ["eval", "-m", ckpt, "--annotations", str(tmp_path / "a.json"), "--images", str(tmp_path)], "annotation file not found")
    _one_line_error(capsys, ["benchmark", "-m", ckpt, "--image-size", "big"], "WIDTHxHEIGHT")

    garbage = tmp_path / "yolact_resnet50_54_800000.pth"
    garbage.write_bytes(b"not a checkpoint")
    _one_line_error(capsys, ["predict", image, "-m", str(garbage)], str(garbage))
    _one_line_error(capsys, ["predict", image, "-m", ckpt, "--config", "yolact_nonexistent"], "unknown model 'yolact_nonexistent'")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    _one_line_error(capsys, ["predict", str(not_image), "-m", ckpt, "-o", str(tmp_path / "o")], "cannot read", "notes.png")
    _one_line_error(capsys, ["predict", image, "-m", ckpt, "--classes", "persn,car"], "unknown class", "did you mean 'person'", "toothbrush")
    if not __import__("torch").cuda.is_available():
        _one_line_error(capsys, ["predict", image, "-m", ckpt, "--device", "cuda"], "CUDA is not available")


def test_console_entry_point_reports_errors_without_traceback(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "yolactpp", "predict", str(tmp_path / "none.jpg"), "-m", "x.pth"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"yolactpp predict: error: no such file or folder: {tmp_path / 'none.jpg'}"]
    help_ = subprocess.run([sys.executable, "-m", "yolactpp", "--help"], capture_output=True, text=True, env=_env(), timeout=300)
    assert help_.returncode == 0 and all(c in help_.stdout for c in ("predict", "eval", "benchmark", "models", "convert"))
