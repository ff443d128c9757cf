"""Documentation stays true: the API reference matches the code, the notebook runs top to bottom."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

import yolactpp

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_api_reference_is_up_to_date() -> None:
    generated = _load_script("gen_api_docs").render()
    current = (DOCS / "api.md").read_text()
    assert current == generated, "docs/api.md is stale: run `python scripts/gen_api_docs.py` and commit the result"


def test_cli_reference_shows_the_real_help() -> None:
    current = (DOCS / "cli.md").read_text()
    assert "$ yolactpp --help" in current
    fresh = _load_script("gen_cli_docs").render(current)
    assert fresh == current, "docs/cli.md shows an old --help: run `python scripts/gen_cli_docs.py` and commit the result"


def test_install_commands_work_from_a_checkout() -> None:
    """yolactpp is not on PyPI yet: a shell block that installs it from the index would fail as written."""
    import re

    from_index = re.compile(r"""^\s*(?:\S*/)?pip install (?:--?\S+ )*['"]?yolactpp(?:\[|['"\s]|$)""")
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", page.read_text(), re.S)
        for line in "".join(blocks).splitlines():
            assert not from_index.match(line), f"{page.name}: {line.strip()!r} installs from PyPI"


def test_api_reference_covers_the_results_api() -> None:
    text = (DOCS / "api.md").read_text()
    for name in ("Detections.to_coco", "Detections.plot", "Detections.filter", "Detections.numpy", "YolactPP.iter_predict"):
        assert f"`{name}(" in text


def test_docs_link_to_existing_files() -> None:
    quickstart = (DOCS / "quickstart.md").read_text()
    assert "assets/quickstart_plot.png" in quickstart and (DOCS / "assets" / "quickstart_plot.png").is_file()
    for page in ("quickstart.md", "cli.md", "api.md", "ray.md", "interop.md"):
        assert (DOCS / page).is_file()


def test_quickstart_notebook_runs(
    v1_checkpoint: Path, square_path: Path, square_det, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # A kernel spec for the interpreter running the tests, so a fresh clone needs no `ipykernel install`.
    spec_dir = tmp_path / "jupyter" / "kernels" / "yolactpp-test"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "yolactpp tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    src = str(Path(yolactpp.__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("YOLACTPP_CHECKPOINT", str(v1_checkpoint))
    monkeypatch.setenv("YOLACTPP_IMAGE", str(square_path))

    notebook = nbformat.read(DOCS / "quickstart.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "commit it without outputs"
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="yolactpp-test", resources={"metadata": {"path": str(DOCS)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert any("image/png" in out.get("data", {}) for out in outputs), "the plot cell shows no picture"
    text = "".join(out.get("text", "") for out in outputs)
    assert "Detections(n=" in text and "(550, 550)" not in text  # the stream cell resized the image
    assert "(240, 320)" in text and "(360, 640)" in text
    # the notebook's predict(IMAGE, score_threshold=0.3) found what predict finds here
    expected = square_det[square_det.scores > 0.3]
    assert f"Detections(n={len(expected)}, image_size=(h=550, w=550)" in text
    assert f"{len(expected.to_coco(1))} ['bbox', 'category_id', 'image_id', 'score', 'segmentation']" in text
    # the interop cells: supervision's annotators drew a picture, polygons and a table came out
    assert sum("image/png" in out.get("data", {}) for out in outputs) >= 2
    assert "supervision.detection.core" in text and "first COCO polygon:" in text
    tables = [out["data"].get("text/plain", "") for out in outputs if "data" in out]
    assert any("class_name" in "".join(t) and "area" in "".join(t) for t in tables)
