"""``yolactpp.load``: one entry point that returns the right predictor for every kind of model,
and the pieces of the predictor contract every runtime shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import yolactpp
from yolactpp.concurrency import torch_threads
from yolactpp.errors import InvalidArgumentError
from yolactpp.predictor import Predictor

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from tests.test_export import small_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The small export-test model as a save_pretrained folder and as an .onnx file."""
    model = small_model()
    root = tmp_path_factory.mktemp("load")
    return model.save_pretrained(root / "folder"), model.export(root / "small.onnx", format="onnx")


def test_load_picks_the_runtime_from_what_it_is_given(saved: tuple[Path, Path]) -> None:
    folder, onnx_file = saved
    eager = yolactpp.load(folder, dtype="float32")
    exported = yolactpp.load(onnx_file, threads=1)
    assert isinstance(eager, yolactpp.YolactPP) and eager.runtime == "torch"
    assert isinstance(exported, yolactpp.export.ExportedModel) and exported.runtime == "onnxruntime"
    assert isinstance(eager, Predictor) and isinstance(exported, Predictor)
    image = np.random.default_rng(1).integers(0, 256, (100, 140, 3), dtype=np.uint8)
    a, b = eager.predict(image), exported.predict(image)
    assert len(a) == len(b) > 0
    np.testing.assert_array_equal(b.labels, a.labels.numpy())
    np.testing.assert_allclose(b.scores, a.scores.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"config": "yolact_base"}, "config= does not apply to an exported model"),
        ({"class_names": ["a", "b", "c"]}, "class_names= does not apply"),
        ({"dtype": "float64"}, "dtype=float64 does not apply"),
        ({"threads": 0}, "threads must be an integer >= 1"),
        ({"device": "mps"}, "ONNX models run on cpu, cuda or cuda:N"),
    ],
)
def test_load_refuses_what_an_exported_file_cannot_take(saved: tuple[Path, Path], kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        yolactpp.load(saved[1], **kwargs)


def test_load_names_the_eager_thread_setting(saved: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidArgumentError, match=r"torch\.set_num_threads"):
        yolactpp.load(saved[0], threads=2)


def test_torch_threads_are_scoped_to_the_block() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing run")
    assert torch.get_num_threads() == before


def test_a_pt2_runtime_sets_its_threads_only_while_it_runs() -> None:
    from yolactpp.runtime.aoti import AotiRuntime

    seen: list[int] = []

    def compiled(*args: torch.Tensor) -> list[torch.Tensor]:
        seen.append(torch.get_num_threads())
        return [args[0] + 1]

    runtime = AotiRuntime.__new__(AotiRuntime)  # the package itself takes minutes to compile
    runtime._compiled, runtime._threads, runtime._target = compiled, 1, torch.device("cpu")
    before = torch.get_num_threads()
    out = runtime.run({"images": np.zeros(2, np.float32)}, ["out"])
    assert seen == [1] and torch.get_num_threads() == before
    np.testing.assert_array_equal(out["out"], np.ones(2, np.float32))
