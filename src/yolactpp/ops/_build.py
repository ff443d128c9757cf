"""Build the native ops for the torch in this environment into the build cache (``yolactpp build-ops``).

For installs that got no compiled library (a build-isolated ``pip install``, a wheel built for
another torch): ``torch.utils.cpp_extension.load`` compiles the packaged sources with ninja into
``_library.build_dir()``, one folder per torch version and source hash, so it happens once per
torch version, and concurrent builds wait for each other (cpp_extension's lock file). Runs only
when asked: nothing is ever compiled at import or during a prediction.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from yolactpp.errors import YolactppError
from yolactpp.ops import _build_config, _library

__all__ = ["BuildFailed", "BuildPlan", "build", "plan"]


class BuildFailed(YolactppError, RuntimeError):
    """The native ops could not be built here; the message says why and what to do."""


@dataclass(frozen=True)
class BuildPlan:
    """What a build will compile: the sources, whether CUDA kernels are included (and why not), where to."""

    sources: list[str]
    cuda: bool
    cuda_note: str
    arch_list: str | None
    target: Path

    def describe(self) -> str:
        import torch

        what = f"CPU + CUDA kernels (archs {self.arch_list})" if self.cuda else f"CPU kernels only ({self.cuda_note})"
        return f"{what} for torch {torch.__version__}"


def _visible_archs() -> str | None:
    """The architectures of the visible GPUs (this build serves this machine), or None without one."""
    import torch

    try:
        count = torch.cuda.device_count()
        archs = sorted({"{}.{}".format(*torch.cuda.get_device_capability(i)) for i in range(count)})
    except Exception:  # a broken driver must not stop a CPU build
        return None
    return ";".join(archs) + "+PTX" if archs else None


def plan() -> BuildPlan:
    """Decide what to build; raises :class:`BuildFailed` when nothing can be (no compiler, no ninja)."""
    _build_config.locate_cuda_home()  # before cpp_extension reads CUDA_HOME
    import torch
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++").split()[0]
    if sys.platform != "win32" and shutil.which(compiler) is None:
        raise BuildFailed(f"no C++ compiler found (CXX={compiler}); install one (e.g. g++) and retry")
    if not cpp_extension.is_ninja_available():
        raise BuildFailed("ninja is not installed; `pip install ninja` and retry")
    cuda, note, archs = False, "YOLACTPP_BUILD_CUDA=0", None
    if _build_config.switch("YOLACTPP_BUILD_CUDA", True):
        nvcc = Path(cpp_extension.CUDA_HOME or "") / "bin" / "nvcc"
        if torch.version.cuda is None:
            note = "this torch has no CUDA"
        elif not cpp_extension.CUDA_HOME or not nvcc.exists():
            note = "nvcc not found; set CUDA_HOME for CUDA kernels"
        else:
            archs = os.environ.get("TORCH_CUDA_ARCH_LIST") or _visible_archs()
            archs = _build_config.cuda_arch_list(torch.cuda.get_arch_list(), archs)
            cuda, note = archs is not None, "" if archs else "torch reports no CUDA architectures"
    return BuildPlan(_build_config.op_sources(cuda), cuda, note, archs, _library.build_dir())


def build(verbose: bool = False, say: Callable[[str], None] = print) -> Path:
    """Compile the ops into the build cache and return the library's path; :class:`BuildFailed` on failure.

    The library is also loaded into this process (``cpp_extension.load`` does so): a second library
    defining the same ops would abort the process, so this refuses to run once the ops are loaded.
    """
    from yolactpp.ops import _loader

    if _loader._state["loaded"]:
        raise BuildFailed(
            f"the native ops are already loaded in this process ({_loader._state['path']}); build in a fresh "
            "process (`yolactpp build-ops`)"
        )
    job = plan()  # first: it points CUDA_HOME at the toolkit before cpp_extension is imported
    import torch
    from torch.utils import cpp_extension

    say(f"building native ops: {job.describe()}")
    say(f"into {job.target}; this takes a minute or more (--verbose shows the compiler)")
    job.target.mkdir(parents=True, exist_ok=True)
    marker = job.target / _library.COMPLETE_MARKER
    marker.unlink(missing_ok=True)
    defines = _build_config.build_defines(torch.__version__, torch.version.cuda if job.cuda else None)
    previous = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if job.arch_list:
        os.environ["TORCH_CUDA_ARCH_LIST"] = job.arch_list
    try:
        cpp_extension.load(
            name=_library.CACHED_NAME,
            sources=job.sources,
            extra_cflags=_build_config.cxx_flags() + defines,
            extra_cuda_cflags=_build_config.nvcc_flags() + defines,
            build_directory=str(job.target),
            with_cuda=job.cuda,
            is_python_module=False,
            verbose=verbose,
        )
    except Exception as exc:  # any failure of the build is reported, not raised
        text = " ".join(str(exc).split())
        first_error = max(text.find("error:"), 0)  # the compiler's first complaint, not ninja's epilogue
        raise BuildFailed(
            f"the build failed ({type(exc).__name__}: {text[first_error : first_error + 400]}); rerun with --verbose"
        ) from exc
    finally:
        if previous is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = previous
    path = job.target / f"{_library.CACHED_NAME}.so"
    marker.write_text(f"{torch.__version__}\n")
    _loader.adopt(path, "build cache")
    return path
