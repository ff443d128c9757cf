"""Which sources a build compiles (chosen by folder), its flags, and CUDA architectures that never fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from yolactpp.ops import _build_config


def tree(root: Path, *files: str) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("// " + name)
    return root


def test_sources_are_chosen_by_folder(tmp_path: Path) -> None:
    root = tree(
        tmp_path,
        "module.cpp",
        "op/op.cpp",
        "op/op.h",
        "op/cpu/op_kernel.cpp",
        "op/autocast/op_autocast.cpp",
        "op/cuda/op_kernel.cu",
        "op/cuda/x_cuda.cpp",
        "op/cuda/helper.h",
        "other/cuda/anything.cpp",
    )
    cpu = {Path(p).relative_to(root).as_posix() for p in _build_config.op_sources(False, root)}
    cuda = {Path(p).relative_to(root).as_posix() for p in _build_config.op_sources(True, root)}
    assert cpu == {"module.cpp", "op/op.cpp", "op/cpu/op_kernel.cpp", "op/autocast/op_autocast.cpp"}
    assert cuda == cpu | {"op/cuda/op_kernel.cu", "op/cuda/x_cuda.cpp", "other/cuda/anything.cpp"}


def test_the_packaged_sources_split_into_cpu_and_cuda() -> None:
    cpu = _build_config.op_sources(False)
    cuda_only = set(_build_config.op_sources(True)) - set(cpu)
    assert any(p.endswith("deform_conv/cpu/deform_conv_kernel.cpp") for p in cpu)
    assert any(p.endswith("deform_conv/autocast/deform_conv_autocast.cpp") for p in cpu)
    assert all("/cuda/" in p for p in cuda_only) and len(cuda_only) == 4
    assert not any("/cuda/" in p for p in cpu)


def test_sources_digest_follows_every_source_and_header(tmp_path: Path) -> None:
    root = tree(tmp_path, "a/a.cpp", "a/a.h")
    before = _build_config.sources_digest(root)
    assert _build_config.sources_digest(root) == before
    (root / "a" / "a.h").write_text("// changed")
    assert _build_config.sources_digest(root) != before


@pytest.mark.parametrize(
    ("torch_archs", "expected"),
    [
        (["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], "7.5;8.0;8.6;9.0;10.0;12.0+PTX"),
        (["sm_90a", "sm_86", "sm_100a", "compute_90"], "8.6;9.0a;10.0a+PTX"),  # arch-specific names used to raise
        (["sm_86", "garbage", "sm_", "sm_9", "sm_xx", ""], "8.6+PTX"),
        ([], None),
    ],
)
def test_cuda_arch_list_from_torch_never_raises(torch_archs: list[str], expected: str | None) -> None:
    assert _build_config.cuda_arch_list(torch_archs) == expected


@pytest.mark.parametrize("requested", ["8.6+PTX", "9.0a", "8.0;9.0a;12.0+PTX", "Ampere"])
def test_requested_arch_list_is_passed_through(requested: str) -> None:
    assert _build_config.cuda_arch_list(["sm_75"], f" {requested} ") == requested


def test_build_defines_record_torch_and_refuse_unsafe_values() -> None:
    assert _build_config.build_defines("2.14.1+cu130", "13.0") == [
        "-DYOLACTPP_BUILD_TORCH=2.14.1+cu130",
        "-DYOLACTPP_BUILD_CUDA=13.0",
    ]
    assert _build_config.build_defines(torch.__version__, None)[1] == "-DYOLACTPP_BUILD_CUDA=none"
    with pytest.raises(ValueError, match="cannot record"):
        _build_config.build_defines('2.0"; rm -rf /', None)


def test_source_file_names_are_unique() -> None:
    """cpp_extension.load (build-ops) names object files after the source's file name, folders dropped."""
    names = [Path(p).name for p in _build_config.op_sources(True)]
    assert len(names) == len(set(names)), sorted(names)
