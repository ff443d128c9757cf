"""The steps of scripts/gpu_check.py that are Python code, one subcommand each, run in a fresh process.

Each subcommand prints what it did and writes its findings to ``--json FILE`` (a dict; rows of
timings under ``"rows"`` in the columns of ``yolactpp benchmark --json``). A step that cannot apply
here writes ``{"skipped": "why"}`` and exits 0; a failed check exits 1. Run from the repository
root with ``src`` and the root on ``PYTHONPATH`` (gpu_check.py sets both).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IMAGE = REPO / "tests/data/oracle/images/landscape_1280x720.png"
#: What the check imports: the package's runtime needs, its ONNX extra and the test runner.
MODULES = (
    "torch", "torchvision", "numpy", "PIL", "huggingface_hub", "safetensors", "typing_extensions",
    "pycocotools", "tqdm", "ninja", "onnx", "onnxruntime", "onnxscript", "pytest",
)  # fmt: skip


def _write(path: str, data: dict[str, Any]) -> None:
    """Written after every finding, so a step stopped at its time limit keeps what it had."""
    Path(path).write_text(json.dumps(data, indent=1) + "\n")


def env(args: argparse.Namespace) -> int:
    """The machine: Python, torch and CUDA versions, the GPU and its compute capability, nvidia-smi."""
    import torch

    data: dict[str, Any] = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        data.update(
            gpu=props.name,
            capability="{}.{}".format(*torch.cuda.get_device_capability(0)),
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            gpus=torch.cuda.device_count(),
        )
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        data["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        data["nvidia_smi"] = f"not available ({type(exc).__name__})"
    for key, value in data.items():
        print(f"{key:>16}: {value}")
    _write(args.json, data)
    return 0


def install(args: argparse.Namespace) -> int:
    """Install the carried wheels (if any) into ``--target``, then import every needed module."""
    wheels = sorted(Path(args.wheels).glob("*.whl")) if args.wheels else []
    data: dict[str, Any] = {"wheels": [w.name for w in wheels]}
    if wheels:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        cmd += ["--no-cache-dir", "--upgrade", "--target", args.target, *map(str, wheels)]
        print("$", " ".join(cmd[:12]), f"... ({len(wheels)} wheels)", flush=True)
        done = subprocess.run(cmd)
        data["pip_returncode"] = done.returncode
        sys.path.insert(0, args.target)
    elif args.wheels:
        print(f"no wheels in {args.wheels}: using the packages installed here")
    else:
        print(f"using this environment's packages ({sys.executable})")
    versions, missing = {}, {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # ImportError, or a broken binary
            missing[name] = f"{type(exc).__name__}: {exc}"
            continue
        versions[name] = getattr(module, "__version__", "?")
    data.update(versions=versions, missing=missing)
    for name, version in versions.items():
        print(f"  {name:<18} {version}")
    for name, why in missing.items():
        print(f"  {name:<18} MISSING: {why}")
    _write(args.json, data)
    return 1 if missing or data.get("pip_returncode") else 0


def weights(args: argparse.Namespace) -> int:
    """The test oracle's synthetic checkpoints (offline; speed does not depend on the weights' values)."""
    from tests.oracle.checkpoints import write_checkpoint

    paths = {model: str(write_checkpoint(model, Path(args.dir))) for model in args.models}
    for model, path in paths.items():
        print(f"  {model}: {path}")
    _write(args.json, {"checkpoints": paths})
    return 0


def selfcheck(args: argparse.Namespace) -> int:
    """Each native kernel once against its reference on ``--device`` (src/yolactpp/ops/_selfcheck.py)."""
    import torch

    from yolactpp.ops import _loader, _selfcheck, backend_info

    device = torch.device(args.device)
    if not _loader.native_available():
        _write(args.json, {"error": f"native ops not loaded: {_loader._state['reason']}"})
        print(f"native ops not loaded: {_loader._state['reason']}")
        return 1
    results: dict[str, str | None] = {}
    for op in _selfcheck.CHECKED_OPS:  # deform_conv2d's check covers its backward kernel too
        if not _loader._has_kernel(op, device.type):
            results[op] = f"the native library has no {device.type} kernel for {op}"
        else:
            results[op] = _selfcheck.verify(op, device)
        print(f"  {op:<14} {device}: {results[op] or 'agrees with the reference'}")
    for info in backend_info():
        print(f"  {info.op:<14} {info.device:<5} {info.backend:<12} {info.reason}")
    _write(args.json, {"device": str(device), "results": results})
    return 1 if any(results.values()) else 0


def _time_row(model: Any, batch: int, reps: int, warmup: int) -> dict[str, Any]:
    from yolactpp.benchmark import benchmark_predict

    return benchmark_predict(model, str(IMAGE), batch_size=batch, warmup=warmup, reps=reps).row()


def onnx(args: argparse.Namespace) -> int:
    """Export ``--weights`` to ONNX (float32, float16) and run it on onnxruntime's CUDA provider (and
    TensorRT's where installed): detections kept against torch float32 on the GPU, and latency."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    data: dict[str, Any] = {"onnxruntime": ort.__version__, "providers": available, "rows": [], "cases": {}}
    if args.device != "cuda" or "CUDAExecutionProvider" not in available:
        why = "a dry run wants no CUDA provider" if args.device != "cuda" else "it has no CUDAExecutionProvider"
        data["skipped"] = (
            f"onnxruntime {ort.__version__} offers {', '.join(available)}: {why} (install onnxruntime-gpu)"
        )
        print(data["skipped"])
        _write(args.json, data)
        return 0
    import torch

    from tests.oracle.compare import kept_fraction
    from yolactpp import YolactPP
    from yolactpp.export import load_exported

    model = YolactPP.from_pretrained(args.weights, config=args.config)
    reference = model.to("cuda").predict(str(IMAGE))
    cases = [("float32", ["CUDAExecutionProvider"]), ("float16", ["CUDAExecutionProvider"])]
    if "TensorrtExecutionProvider" in available:  # last: building its engines may take the rest of the step
        cases.append(("float32", ["TensorrtExecutionProvider", "CUDAExecutionProvider"]))
    failed = False
    for dtype, providers in cases:
        path = Path(args.work) / f"{args.config}.{dtype}.onnx"
        if not path.exists():
            model.to("cpu", torch.float32).export(path, format="onnx", dtype=dtype)
        exported = load_exported(path, providers=[*providers, "CPUExecutionProvider"])
        matched, eligible = kept_fraction(reference, exported.predict(str(IMAGE)))
        row = _time_row(exported, 1, args.reps, 2)
        row["runtime"] = f"onnxruntime-{providers[0].removesuffix('ExecutionProvider').lower()}"
        key = f"{dtype} {providers[0]}"
        data["cases"][key] = {"kept": f"{matched}/{eligible}"}
        data["rows"].append(row)
        failed |= matched < 0.95 * eligible
        print(f"  {key}: kept {matched}/{eligible} of torch's float32 detections; median {row['median_ms']} ms")
        _write(args.json, data)
    return 1 if failed else 0


def _timed(run: Any, image: Any, device: str) -> float:
    """Seconds of one call, the GPU synchronised before the clock stops."""
    import torch

    start = time.perf_counter()
    run(image)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def maskrcnn(args: argparse.Namespace) -> int:
    """torchvision's Mask R-CNN (random weights, 100 detections, 550 px) timed like ``yolactpp benchmark``."""
    from PIL import Image

    from benchmarks.bench_e2e import build_maskrcnn

    image = Image.open(IMAGE).convert("RGB")
    if args.image_size:  # smaller masks to paste: the dry run's CPU
        width, height = (int(v) for v in args.image_size.split("x"))
        image = image.resize((width, height))
    data: dict[str, Any] = {"rows": []}
    for dtype in args.dtypes.split(","):
        for batch in (int(b) for b in args.batches.split(",")):
            run = build_maskrcnn(dtype, False, device=args.device, batch_size=batch, size=args.size)
            for _ in range(args.warmup):
                _timed(run, image, args.device)
            times = [_timed(run, image, args.device) for _ in range(args.reps)]
            median = statistics.median(times)
            row = {
                "model": "maskrcnn_resnet50_fpn", "runtime": "torchvision", "device": args.device, "dtype": dtype,
                "batch_size": batch, "image_size": f"{image.width}x{image.height}", "reps": len(times),
                "median_ms": round(1000 * median, 2), "images_per_s": round(batch / median, 2),
            }  # fmt: skip
            data["rows"].append(row)
            print(f"  maskrcnn {dtype} batch {batch}: median {row['median_ms']} ms, {row['images_per_s']} img/s")
            _write(args.json, data)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for name, fn in (
        ("env", env),
        ("install", install),
        ("weights", weights),
        ("selfcheck", selfcheck),
        ("onnx", onnx),
        ("maskrcnn", maskrcnn),
    ):
        p = sub.add_parser(name, help=(fn.__doc__ or "").splitlines()[0])
        p.add_argument("--json", required=True, metavar="FILE")
        p.set_defaults(run=fn)
        if name == "install":
            p.add_argument(
                "--wheels", metavar="DIR", help="folder of wheels to install first (none: use what is installed)"
            )
            p.add_argument("--target", metavar="DIR", help="where the wheels go (put it on PYTHONPATH)")
        if name == "weights":
            p.add_argument("--dir", required=True)
            p.add_argument("models", nargs="+")
        if name in ("selfcheck", "onnx", "maskrcnn"):
            p.add_argument("--device", required=True)
        if name == "onnx":
            p.add_argument("--weights", required=True)
            p.add_argument("--config", required=True)
            p.add_argument("--work", required=True)
            p.add_argument("--reps", type=int, default=10)
        if name == "maskrcnn":
            p.add_argument("--dtypes", default="float32,float16")
            p.add_argument("--batches", default="1,8")
            p.add_argument("--size", type=int, default=550, help="the network's input size (min and max side)")
            p.add_argument("--image-size", metavar="WxH", help="resize the 1280x720 image first (default: keep it)")
            p.add_argument("--warmup", type=int, default=2)
            p.add_argument("--reps", type=int, default=10)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
