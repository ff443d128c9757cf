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

import os
import shutil
import sys
import time
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

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


def switch(name: str, default: bool) -> bool:
    """A boolean environment switch: 0/false/no/off mean off, anything else on."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    return value not in ("0", "false", "no", "off")


STRICT = switch("YOLACTPP_BUILD_STRICT", False)


class OpsUnavailable(Exception):
    """Why the native ops are not built; ends up in the one explanatory line."""


def sources(pattern: str) -> list[str]:
    return sorted(p.as_posix() for p in OPS_DIR.glob(pattern))


def cuda_arch_list(torch) -> str:
    """TORCH_CUDA_ARCH_LIST as set, else the architectures the installed torch was built for."""
    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    archs = sorted({a.split("_", 1)[1] for a in torch.cuda.get_arch_list() if a.startswith("sm_")}, key=int)
    if not archs:
        raise OpsUnavailable("torch reports no CUDA architectures; set TORCH_CUDA_ARCH_LIST")
    return ";".join(f"{a[:-1]}.{a[-1]}" for a in archs) + "+PTX"


def locate_cuda_home() -> None:
    """Point CUDA_HOME at a toolkit with headers when it is unset and torch's guess has none.

    torch guesses the toolkit from ``which nvcc``; an nvcc wrapper script in /usr/local/bin then
    yields /usr/local, which lacks cuda_runtime_api.h. Must run before cpp_extension is imported.
    """
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH"):
        return
    nvcc = shutil.which("nvcc")
    guesses = [os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))] if nvcc else []
    for home in guesses + ["/usr/local/cuda"]:
        if os.path.exists(os.path.join(home, "include", "cuda_runtime_api.h")):
            os.environ["CUDA_HOME"] = home
            return


def make_extension(cuda: bool):
    """The ``yolactpp._C`` extension: CPU sources always, CUDA sources when ``cuda``."""
    from torch.utils import cpp_extension

    cxx_flags = ["-O3", "-g0", "-ffp-contract=off"] if sys.platform != "win32" else ["/O2", "/fp:precise"]
    kwargs = dict(py_limited_api=True, extra_compile_args={"cxx": cxx_flags})
    cpu_sources = [s for s in sources("**/*.cpp") if "_cuda" not in Path(s).name]
    if not cuda:
        return cpp_extension.CppExtension("yolactpp._C", cpu_sources, **kwargs)
    kwargs["extra_compile_args"]["nvcc"] = ["-O3"]
    cuda_sources = sources("**/*_cuda_*.cpp") + sources("**/*.cu")
    return cpp_extension.CUDAExtension("yolactpp._C", cpu_sources + cuda_sources, **kwargs)


def plan():
    """(extension, build_ext class, description) for this environment; raises OpsUnavailable."""
    if not switch("YOLACTPP_BUILD_OPS", True):
        raise OpsUnavailable("YOLACTPP_BUILD_OPS=0")
    locate_cuda_home()
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
    if switch("YOLACTPP_BUILD_CUDA", True):
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
    except OpsUnavailable as exc:
        if STRICT:
            raise SystemExit(f"yolactpp: YOLACTPP_BUILD_STRICT=1 and the native ops cannot be built: {exc}")
        say(f"native ops NOT built: {exc}; {FALLBACK}")
        return {}
    say(f"building native ops: {description}")
    build_class = build_class.with_options(no_python_abi_suffix=False)
    return {
        "ext_modules": [extension],
        "cmdclass": {"build_ext": tolerant(build_class, cuda)},
        "options": {"bdist_wheel": {"py_limited_api": "cp310"}},
    }


setup(**configure())
