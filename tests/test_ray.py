"""Batch inference on Ray Data (``yolactpp.integrations.ray`` and ``predict --engine ray``).

One real local Ray instance (2 CPUs, loopback only) serves the whole module. Every result row is
checked against the in-process ``predict`` of the same image and options; a corrupt file must give
an error row naming it while the others still get results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

import yolactpp
from yolactpp.cli import main

if os.environ.get("CI"):
    import ray  # CI installs the dev extra, which includes Ray: these tests must run there
else:
    ray = pytest.importorskip("ray", reason="Ray Data is not installed (pip install 'yolactpp[ray]')")

from yolactpp.integrations.ray import RESULT_SCHEMA, Predictor, predict_dataset, read_image_files
from yolactpp.predict_options import PredictOptions

OPTIONS: dict[str, Any] = {"score_threshold": 0.3, "max_detections": 25}
CLI_OPTIONS = ["--score-threshold", "0.3", "--max-detections", "25"]
BAD_FILES = ("truncated.png", "notes.jpg")


def _src() -> str:
    return str(Path(yolactpp.__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    """Environment for a subprocess that imports the same yolactpp as this test run."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([_src(), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def ray_instance():
    """A local Ray instance with 2 CPUs whose workers import this yolactpp; shut down after the module."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=512 * 2**20,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": _src()}},
    )
    try:
        assert ray.util.get_node_ip_address() == "127.0.0.1", "the test instance must stay on loopback"
        yield
    finally:
        ray.shutdown()


def _variants(square: Image.Image, landscape: Image.Image) -> dict[str, Image.Image]:
    """15 different images: crops, resizes, flips, a rotation and other pixel formats of the two
    (every image costs a prediction in the actors and one in the reference)."""
    w, h = square.size
    lw, lh = landscape.size
    return {
        "sq_original.png": square,
        "sq_flip_lr.png": square.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        "sq_rot90.png": square.transpose(Image.Transpose.ROTATE_90),
        "sq_half.png": square.resize((w // 2, h // 2)),
        "sq_crop_corner.png": square.crop((0, 0, w // 3, h // 3)),
        "sq_gray.png": square.convert("L"),
        "sq_rgba.png": square.convert("RGBA"),
        "sq_quality80.jpg": square,
        "ls_original.png": landscape,
        "ls_flip_tb.png": landscape.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        "ls_squeezed.png": landscape.resize((lw // 3, lh // 2)),
        "ls_crop_centre.png": landscape.crop((lw // 4, lh // 4, 3 * lw // 4, 3 * lh // 4)),
        "ls_crop_corner.png": landscape.crop((0, 0, lw // 3, lh // 3)),
        "ls_palette.png": landscape.convert("P"),
        "ls_quality80.jpg": landscape,
    }


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory, square_path: Path, landscape_path: Path) -> Path:
    """15 readable images and 2 corrupt files (a truncated PNG and a text file named .jpg)."""
    folder = tmp_path_factory.mktemp("ray_images")
    with Image.open(square_path) as sq, Image.open(landscape_path) as ls:
        variants = _variants(sq.convert("RGB"), ls.convert("RGB"))
    for name, img in variants.items():
        img.save(folder / name, **({"quality": 80} if name.endswith(".jpg") else {}))
    (folder / "truncated.png").write_bytes(square_path.read_bytes()[:300])
    (folder / "notes.jpg").write_text("this is not an image\n")
    return folder


def _good_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name not in BAD_FILES)


@pytest.fixture(scope="module")
def reference(images_dir: Path, v1_model) -> dict[str, Any]:
    """In-process ``predict`` of every readable image with the same options, by absolute path."""
    return {str(p.resolve()): v1_model.predict(p, **OPTIONS) for p in _good_paths(images_dir)}


def _assert_row_matches(row: dict[str, Any], det: Any) -> None:
    name = row["path"]
    assert row["error"] is None, name
    assert (row["height"], row["width"]) == det.image_size, name
    assert row["num_detections"] == len(det), name
    assert list(row["labels"]) == det.labels.tolist(), name
    assert list(row["class_names"]) == det.class_names, name
    boxes = np.array([list(b) for b in row["boxes"]], dtype=np.float64).reshape(-1, 4)
    np.testing.assert_allclose(boxes, det.boxes.double().numpy(), rtol=0, atol=2e-3, err_msg=name)
    np.testing.assert_allclose(row["scores"], det.scores.double().numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(row["box_scores"], det.box_scores.double().numpy(), rtol=1e-4, atol=1e-6, err_msg=name)
    masks = [{"size": [int(s) for s in m["size"]], "counts": m["counts"]} for m in row["masks"]]
    # Actors run other batch sizes and thread counts than the reference, so oneDNN may round a
    # few mask logits at the 0.5 cut differently (seen on AVX2-only CPUs): allow a handful of
    # flipped pixels per mask, never a different mask.
    decoded = mask_utils.decode(masks).transpose(2, 0, 1).astype(bool) if masks else np.zeros((0, *det.image_size), bool)
    expected = det.masks.numpy()
    assert decoded.shape == expected.shape, name
    for i, (got, want) in enumerate(zip(decoded, expected)):
        flipped = int(np.count_nonzero(got != want))
        assert flipped <= max(8, want.sum() // 1000), f"{name}: mask {i} differs in {flipped} of {want.sum()} pixels"


def _assert_error_rows(rows: list[dict[str, Any]], folder: Path) -> None:
    by_name = {Path(r["path"]).name: r for r in rows}
    for name in BAD_FILES:
        row = by_name[name]
        assert row["error"] is not None and str(folder.resolve() / name) in row["error"], row["error"]
        assert row["num_detections"] is None and row["masks"] is None and row["height"] is None
    assert "cannot read" in by_name["notes.jpg"]["error"]


# -- the library: predict_dataset ----------------------------------------------------------------
@pytest.fixture(scope="module")
def dataset_result(ray_instance, images_dir: Path, v1_checkpoint: Path):
    ds = read_image_files(str(images_dir))
    return predict_dataset(ds, v1_checkpoint, batch_size=4, concurrency=2, **OPTIONS).materialize()


def test_every_image_gets_exactly_one_row(dataset_result, images_dir: Path) -> None:
    rows = dataset_result.take_all()
    expected = sorted(str(p.resolve()) for p in images_dir.iterdir())
    assert len(expected) == 17
    assert sorted(r["path"] for r in rows) == expected  # none lost, none duplicated
    assert sorted(r["image_id"] for r in rows) == expected


def test_rows_equal_in_process_predict(dataset_result, reference: dict[str, Any]) -> None:
    rows = {r["path"]: r for r in dataset_result.take_all() if r["error"] is None}
    assert sorted(rows) == sorted(reference)
    assert sum(len(det) for det in reference.values()) > 100  # the comparison covers many detections
    for path, det in reference.items():
        _assert_row_matches(rows[path], det)


def test_corrupt_images_give_error_rows_naming_them(dataset_result, images_dir: Path) -> None:
    _assert_error_rows(dataset_result.take_all(), images_dir)


def test_result_blocks_have_the_documented_schema(dataset_result) -> None:
    tables = list(dataset_result.iter_batches(batch_format="pyarrow", batch_size=None))
    assert tables and all(t.schema.equals(RESULT_SCHEMA) for t in tables)


def test_read_images_arrays_own_format_folder_and_default_pool(
    ray_instance, images_dir: Path, reference: dict[str, Any], v1_model, tmp_path: Path
) -> None:
    names = ["sq_original.png", "sq_gray.png", "ls_crop_corner.png", "sq_rot90.png"]
    folder = tmp_path / "decoded"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes((images_dir / name).read_bytes())
    weights = v1_model.save_pretrained(tmp_path / "own_format")
    ds = ray.data.read_images(str(folder), mode="RGB", include_paths=True)
    rows = predict_dataset(ds, weights, batch_size=3, options=PredictOptions(**OPTIONS)).take_all()  # the object crosses to actors
    assert sorted(Path(r["path"]).name for r in rows) == sorted(names)
    for row in rows:
        _assert_row_matches(row, reference[str((images_dir / Path(row["path"]).name).resolve())])


def test_predict_dataset_checks_its_arguments(ray_instance, v1_checkpoint: Path) -> None:
    ds = ray.data.from_items([{"path": "unused.png"}])
    with pytest.raises(TypeError, match="score_treshold"):
        predict_dataset(ds, v1_checkpoint, score_treshold=0.5)
    with pytest.raises(ValueError, match="batch_size"):
        predict_dataset(ds, v1_checkpoint, batch_size=0)
    with pytest.raises(ValueError, match="concurrency"):
        predict_dataset(ds, v1_checkpoint, concurrency=(3, 1))
    with pytest.raises(ValueError, match="dtype"):
        predict_dataset(ds, v1_checkpoint, dtype="int8")


# -- the callable class on its own ---------------------------------------------------------------
def test_predictor_reads_paths_arrays_and_ids_and_reports_bad_rows(v1_checkpoint: Path, square_path: Path, square_det) -> None:
    import pandas as pd

    predictor = Predictor(v1_checkpoint)
    with pytest.raises(ValueError, match="unknown class"):
        Predictor(v1_checkpoint, classes=["no such class"])
    with pytest.raises(ValueError, match="unknown class"):
        Predictor(v1_checkpoint, options=PredictOptions(classes=["no such class"]))

    table = predictor(pd.DataFrame({"path": [str(square_path), "/no/such/file.png"], "image_id": ["a", "b"]}))
    assert table.schema.equals(RESULT_SCHEMA)
    good, missing = table.to_pylist()
    assert good["image_id"] == "a" and good["num_detections"] == len(square_det) == 100
    _assert_row_matches(good, square_det)
    assert missing["image_id"] == "b" and "/no/such/file.png" in missing["error"]

    rgb = np.asarray(Image.open(square_path).convert("RGB"))
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    images = np.empty(2, dtype=object)  # what read_images gives for images of different shapes
    images[0], images[1] = rgb, rgba
    ok, bad = predictor({"image": images}).to_pylist()
    assert ok["image_id"].startswith("sha1:") and ok["image_id"] != bad["image_id"]
    _assert_row_matches(ok, square_det)
    assert "H x W x 3" in bad["error"] and bad["image_id"] in bad["error"]

    with pytest.raises(ValueError, match="expected 'bytes'"):
        predictor({"pixels": np.zeros(1)})

    def bug(*args: Any) -> None:  # error rows are for bad inputs (by exception type), never for bugs
        raise RuntimeError("a library bug")

    predictor._to_array = bug  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="a library bug"):
        predictor({"path": [str(square_path)]})


# -- the command line ----------------------------------------------------------------------------
def test_cli_engine_ray_writes_one_parquet_row_per_image(
    ray_instance, images_dir: Path, reference: dict[str, Any], v1_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    files = ["sq_gray.png", "sq_rgba.png", "ls_palette.png", *BAD_FILES]
    sources = [str(images_dir / "ls_crop_*.png")] + [str(images_dir / name) for name in files]  # a glob and files
    argv = ["predict", "--engine", "ray", *sources, "-m", str(v1_checkpoint), "-o", str(out)]
    assert main([*argv, "--concurrency", "2", "--batch-size", "2", *CLI_OPTIONS]) == 0
    captured = capsys.readouterr()
    assert "7 images, 2 unreadable" in captured.out and str(out) in captured.out
    assert all(f"skipped: cannot read {images_dir.resolve() / name}" in captured.err for name in BAD_FILES)

    frame = pd.read_parquet(out)
    expected = [*files, "ls_crop_centre.png", "ls_crop_corner.png"]
    assert len(frame) == 7 and frame["path"].is_unique
    assert sorted(frame["path"]) == sorted(str((images_dir / name).resolve()) for name in expected)
    assert pq.read_schema(out).equals(RESULT_SCHEMA)
    rows = pq.read_table(out).to_pylist()
    _assert_error_rows(rows, images_dir)
    for row in rows:
        if row["error"] is None:
            _assert_row_matches(row, reference[row["path"]])


def test_cli_engine_ray_reports_an_actor_error_in_one_line(
    ray_instance, images_dir: Path, v1_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    argv = ["predict", "--engine", "ray", str(images_dir / "sq_half.png"), "-m", str(v1_checkpoint)]
    assert main([*argv, "--classes", "unicorn", "-o", str(tmp_path / "results.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown class(es) 'unicorn'" in err
    assert list(tmp_path.iterdir()) == []  # no partial output left behind


def test_cli_ray_options_are_checked_before_any_work(images_dir: Path, v1_checkpoint: Path, tmp_path: Path, capsys) -> None:
    base = ["predict", str(images_dir), "-m", str(v1_checkpoint), "-o", str(tmp_path / "out")]
    cases = [
        (["--address", "auto"], "--address applies to --engine ray only"),
        (["--concurrency", "2"], "--concurrency applies to --engine ray only"),
        (["--engine", "ray", "--save-masks"], "--save-masks is not available with --engine ray"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2
        assert message in capsys.readouterr().err
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert main(["predict", "--engine", "ray", str(video), "-m", str(v1_checkpoint)]) == 2
    assert "takes images only" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_engine_ray_starts_its_own_local_instance(images_dir: Path, v1_checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("sq_half.png", "notes.jpg"):
        (folder / name).write_bytes((images_dir / name).read_bytes())
    out = tmp_path / "results.parquet"
    cmd = [sys.executable, "-m", "yolactpp", "predict", "--engine", "ray", str(folder), "-m", str(v1_checkpoint)]
    proc = subprocess.run([*cmd, "-o", str(out), *CLI_OPTIONS], capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 images, 1 unreadable" in proc.stdout
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert sorted(Path(r["path"]).name for r in rows) == ["notes.jpg", "sq_half.png"]
    assert [r["error"] is None for r in sorted(rows, key=lambda r: r["path"])] == [False, True]


def test_docs_list_every_result_column() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "ray.md").read_text()
    table = next(b for b in text.split("## The output rows")[1].split("\n\n") if b.startswith("| column"))
    documented = [name for line in table.splitlines()[2:] for name in line.split("|")[1].replace("`", "").split(", ")]
    assert [n.strip() for n in documented] == RESULT_SCHEMA.names


# -- packaging -----------------------------------------------------------------------------------
def test_yolactpp_does_not_import_ray_and_names_the_extra_when_it_is_missing(tmp_path: Path) -> None:
    code = (
        "import sys, yolactpp, yolactpp.cli, yolactpp.integrations, yolactpp.model, yolactpp.cli.predict;"
        "assert 'ray' not in sys.modules, 'importing yolactpp imported ray';"
        "sys.modules['ray'] = None\n"
        "try:\n    import yolactpp.integrations.ray\nexcept ImportError as e:\n    print(e)\n"
        "from yolactpp.cli import main;"
        f"sys.exit(main(['predict', '--engine', 'ray', {str(tmp_path)!r}, '-m', 'x.pth']))"
    )
    (tmp_path / "a.png").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'yolactpp[ray]'" in proc.stdout
    assert "pip install 'yolactpp[ray]'" in proc.stderr and proc.stderr.count("\n") == 1


# -- exported files: the same engine serves .onnx (and int8 .onnx) through yolactpp.load ----------
@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnxscript")
    from tests.test_export import small_model

    return small_model().export(tmp_path_factory.mktemp("onnx") / "small.onnx", format="onnx")


def test_cli_engine_ray_predicts_with_an_onnx_file(
    ray_instance, small_onnx: Path, images_dir: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    from yolactpp.export import load_exported

    out = tmp_path / "onnx.parquet"
    files = ["sq_half.png", "ls_crop_corner.png", "notes.jpg"]
    argv = ["predict", "--engine", "ray", *(str(images_dir / f) for f in files), "-m", str(small_onnx), "-o", str(out)]
    assert main([*argv, "--concurrency", "1", "--score-threshold", "0"]) == 0
    rows = {Path(r["path"]).name: r for r in pq.read_table(out).to_pylist()}
    assert rows["notes.jpg"]["error"] is not None
    local = load_exported(small_onnx)
    for name in files[:2]:
        det, row = local.predict(images_dir / name), rows[name]
        assert row["error"] is None and row["num_detections"] == len(det) > 0, name
        assert list(row["labels"]) == det.labels.tolist(), name
        np.testing.assert_allclose(row["scores"], det.scores, rtol=1e-5, atol=1e-6, err_msg=name)
