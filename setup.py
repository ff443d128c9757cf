"""Build of the optional native ops ``yolactpp._C`` (metadata lives in pyproject.toml).

The C++/CUDA kernels under ``src/yolactpp/_ops`` are compiled against the torch found at build
time. Installing never fails because of them: without torch in the build environment, without a
compiler, or when the build breaks, the pure-Python package is installed (the ops then fall back
to torchvision / PyTorch) and one line says why. Environment switches:

- ``YOLACTPP_BUILD_OPS=0``: do not build the native ops at all.
- ``YOLACTPP_BUILD_CUDA=0``: CPU kernels only, even when nvcc is found.
- ``YOLACTPP_BUILD_STRICT=1``: a failure to build the ops fails the installation.
- ``TORCH_CUDA_ARCH_LIST``: CUDA architectures (default: those the installed torch supports).
- ``MAX_JOBS``: parallel compile jobs (ninja).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


def load_build_config():
    """yolactpp/ops/_build_config.py, by path: which sources, flags and architectures (shared with build-ops)."""
    path = Path(__file__).resolve().parent / "src" / "yolactpp" / "ops" / "_build_config.py"
    spec = importlib.util.spec_from_file_location("yolactpp_build_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


config = load_build_config()
OPS_DIR = Path("src") / "yolactpp" / "_ops"
SWITCHES = {  # name: what leaving it unset means
    "YOLACTPP_BUILD_OPS": "build",
    "YOLACTPP_BUILD_CUDA": "when nvcc is found",
    "YOLACTPP_BUILD_STRICT": "failures are not fatal",
    "TORCH_CUDA_ARCH_LIST": "torch's architectures",
    "MAX_JOBS": "ninja's default",
}
FALLBACK = "installing the pure-Python package (ops fall back to torchvision / PyTorch)"


def say(message: str) -> None:
    """One build-log line, prefixed so it stands out in pip's output (shown with pip -v)."""
    print(f"yolactpp: {message}", flush=True)


STRICT = config.switch("YOLACTPP_BUILD_STRICT", False)


class OpsUnavailable(Exception):
    """Why the native ops are not built; ends up in the one explanatory line."""


def cuda_arch_list(torch) -> str:
    """TORCH_CUDA_ARCH_LIST as set, else the architectures the installed torch was built for."""
    archs = config.cuda_arch_list(torch.cuda.get_arch_list(), os.environ.get("TORCH_CUDA_ARCH_LIST"))
    if archs is None:
        raise OpsUnavailable("torch reports no CUDA architectures; set TORCH_CUDA_ARCH_LIST")
    return archs


def make_extension(cuda: bool):
    """The ``yolactpp._C`` extension: the sources outside ``cuda/`` folders always, those inside when ``cuda``.

    The torch (and CUDA) version is compiled in as the build record, which the loader checks before
    loading the library, so a wheel installed next to another torch falls back instead of crashing.
    """
    import torch
    from torch.utils import cpp_extension

    defines = config.build_defines(torch.__version__, torch.version.cuda if cuda else None)
    sources = [os.path.relpath(s) for s in config.op_sources(cuda, OPS_DIR.resolve())]
    kwargs = dict(py_limited_api=True, extra_compile_args={"cxx": config.cxx_flags() + defines})
    if not cuda:
        return cpp_extension.CppExtension("yolactpp._C", sources, **kwargs)
    kwargs["extra_compile_args"]["nvcc"] = config.nvcc_flags() + defines
    return cpp_extension.CUDAExtension("yolactpp._C", sources, **kwargs)


def plan():
    """(extension, build_ext class, description) for this environment; raises OpsUnavailable."""
    if not config.switch("YOLACTPP_BUILD_OPS", True):
        raise OpsUnavailable("YOLACTPP_BUILD_OPS=0")
    config.locate_cuda_home()
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # torch absent or broken: an isolated build env, most likely
        raise OpsUnavailable(
            f"torch is not importable at build time ({type(exc).__name__}: {exc}); "
            "install torch first and use pip install --no-build-isolation"
        ) from None
    if sys.platform != "win32":
        compiler = os.environ.get("CXX", "c++").split()[0]
        if shutil.which(compiler) is None:
            raise OpsUnavailable(f"no C++ compiler found (CXX={compiler})")
    cuda = False
    why_not_cuda = "YOLACTPP_BUILD_CUDA=0"
    if config.switch("YOLACTPP_BUILD_CUDA", True):
        nvcc = os.path.join(cpp_extension.CUDA_HOME or "", "bin", "nvcc")
        if torch.version.cuda is None:
            why_not_cuda = "torch was built without CUDA"
        elif not cpp_extension.CUDA_HOME or not os.path.exists(nvcc):
            why_not_cuda = "nvcc not found (set CUDA_HOME)"
        else:
            cuda = True
    if cuda:
        os.environ["TORCH_CUDA_ARCH_LIST"] = cuda_arch_list(torch)
        what = f"CPU + CUDA kernels (archs {os.environ['TORCH_CUDA_ARCH_LIST']})"
    else:
        what = f"CPU kernels only ({why_not_cuda})"
    return make_extension(cuda), cpp_extension.BuildExtension, f"{what} against torch {torch.__version__}", cuda


def tolerant(base: type[build_ext], cuda: bool) -> type[build_ext]:
    """build_ext that turns a failed ops build into a pure-Python install (unless strict).

    A failed CUDA build is retried once with the CPU kernels only.
    """

    class TolerantBuildExt(base):  # type: ignore[misc, valid-type]
        def run(self) -> None:
            start = time.monotonic()
            compiler, inplace = self.compiler, self.inplace  # run() changes both before failing
            try:
                super().run()
            except Exception as exc:
                if STRICT:
                    raise
                if cuda and self.extensions:
                    say(f"the CUDA kernels failed to build ({one_line(exc)}); retrying with CPU kernels only")
                    cpu_only = make_extension(cuda=False)
                    for key in ("sources", "include_dirs", "library_dirs", "libraries", "extra_compile_args",
                                "extra_link_args", "define_macros", "runtime_library_dirs"):
                        setattr(self.extensions[0], key, getattr(cpu_only, key))
                    self.compiler, self.inplace = compiler, inplace
                    try:
                        super().run()
                    except Exception as exc2:
                        return self.give_up(exc2)
                else:
                    return self.give_up(exc)
            say(f"native ops built in {time.monotonic() - start:.0f} s")

        def give_up(self, exc: Exception) -> None:
            self.extensions = []
            self.distribution.ext_modules = []
            say(f"native ops NOT built: the build failed ({one_line(exc)}); {FALLBACK}")

    return TolerantBuildExt


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def configure() -> dict:
    say("build switches: " + ", ".join(f"{k}={os.environ.get(k) or f'(unset: {v})'}" for k, v in SWITCHES.items()))
    try:
        extension, build_class, description, cuda = plan()
    except Exception as exc:  # OpsUnavailable, or anything unforeseen: never fail the install for the ops
        why = str(exc) if isinstance(exc, OpsUnavailable) else one_line(exc)
        if STRICT:
            raise SystemExit(f"yolactpp: YOLACTPP_BUILD_STRICT=1 and the native ops cannot be built: {why}")
        say(f"native ops NOT built: {why}; {FALLBACK}")
        return {}
    say(f"building native ops: {description}")
    build_class = build_class.with_options(no_python_abi_suffix=False)
    return {
        "ext_modules": [extension],
        "cmdclass": {"build_ext": tolerant(build_class, cuda)},
        "options": {"bdist_wheel": {"py_limited_api": "cp310"}},
    }


setup(**configure())
