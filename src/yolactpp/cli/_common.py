"""Shared pieces of the subcommands: parser, error policy, model options, inputs and outputs."""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from yolactpp._facts import IMAGE_SUFFIXES, MODEL_DTYPES, VIDEO_SUFFIXES, is_url
from yolactpp.errors import MissingFileError, YolactppError

if TYPE_CHECKING:
    from yolactpp.export.predictor import ExportedModel
    from yolactpp.model import YolactPP
    from yolactpp.predict_options import PredictOptions

DTYPES = MODEL_DTYPES  # float16 too: the GPU check benchmarks it (slow or missing on most CPUs)


class CliError(YolactppError):
    """A user mistake the command reports in one line (exit code 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line (``prog: error: ...``) plus a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def is_user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a mistake in the user's input (one line, exit 2) rather than a bug.

    Only the library's deliberate errors (:class:`~yolactpp.YolactppError`) and missing files
    qualify; anything else is a bug and keeps its traceback.
    """
    return isinstance(exc, (YolactppError, FileNotFoundError))


@contextlib.contextmanager
def warnings_above_progress_bars() -> Iterator[None]:
    """Print warnings through ``tqdm.write`` while a command runs, so that one arising mid-run
    (e.g. a fallback kernel) is printed above the progress bar instead of inside it."""
    previous = warnings.showwarning

    def show(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None
    ) -> None:
        from tqdm import tqdm

        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")
        tqdm.write(text, file=file or sys.stderr)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def one_line(exc: BaseException) -> str:
    """The exception message with its lines joined (some library errors span several)."""
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


# -- argument types -------------------------------------------------------------------------------
def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def image_size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {text!r}") from None
    if width < 2 or height < 2:
        raise argparse.ArgumentTypeError(f"image size must be at least 2x2, got {text!r}")
    return height, width


# -- model options ---------------------------------------------------------------------------------
def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "-m", "--model", required=True,
        help="the model: an original .pth checkpoint, a save_pretrained folder, a zoo name (`yolactpp models`), "
        "an owner/name hub repo, or an exported .onnx (float or int8) / .pt2 file",
    )  # fmt: skip
    group.add_argument("--config", metavar="NAME", help="model config name, when it cannot be inferred from the weights")
    add_class_names_argument(group)
    group.add_argument("--device", metavar="DEVICE", help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu)")
    group.add_argument(
        "--dtype", choices=DTYPES, default="float32",
        help="compute dtype; float16 is for GPUs (slow on CPUs) (default: %(default)s)",
    )  # fmt: skip


def add_class_names_argument(parser: Any) -> None:
    parser.add_argument(
        "--class-names", metavar="FILE",
        help="text file with one class name per line, for weights trained on another dataset (e.g. an original "
        ".pth with its own class count; without it such classes are called class_0, class_1, ...)",
    )  # fmt: skip


def read_class_names(path: str | None) -> list[str] | None:
    """The names in a ``--class-names`` file: one per line, blank lines skipped."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except IsADirectoryError:
        raise CliError(f"--class-names {path}: is a directory, expected a text file with one name per line") from None
    except UnicodeDecodeError:
        raise CliError(f"--class-names {path}: not UTF-8 text (expected one class name per line)") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise CliError(f"--class-names {path}: the file holds no class names (expected one per line)")
    return names


def resolve_device(name: str | None) -> Any:
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CliError(f"invalid device {name!r} (examples: cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"device {name!r} requested but CUDA is not available here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CliError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CliError(f"device {name!r} requested but MPS is not available here")
    return device


def load_model(args: argparse.Namespace) -> YolactPP | ExportedModel:
    """The model named by ``--model`` (:func:`yolactpp.load`): on ``--device`` in ``--dtype`` for
    checkpoints, folders and names; an exported ``.onnx`` / ``.pt2`` file as it was exported (for
    ``.onnx`` torch is not imported)."""
    from yolactpp.loading import is_exported_file, load

    dtype = getattr(args, "dtype", "float32")
    threads = getattr(args, "threads", None)
    if is_exported_file(args.model):
        return load(
            args.model,
            config=args.config,
            class_names=read_class_names(getattr(args, "class_names", None)),
            device=getattr(args, "device", None),
            dtype=None if dtype == "float32" else dtype,
            threads=threads,
        )
    return load(
        args.model,
        config=args.config,
        class_names=read_class_names(getattr(args, "class_names", None)),
        device=resolve_device(args.device),
        dtype=dtype,
    )


def parse_classes(values: list[str] | None) -> list[str | int] | None:
    """``--classes person,car --classes 2`` -> names and ids (validated later by the model)."""
    if not values:
        return None
    out: list[str | int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part:
                out.append(int(part) if part.isdigit() else part)
    return out or None


def predict_options(args: argparse.Namespace) -> PredictOptions:
    """The :class:`PredictOptions` of ``--score-threshold``, ``--classes`` and ``--max-detections``
    (built once, for whichever engine runs them)."""
    from yolactpp.predict_options import PredictOptions

    return PredictOptions(
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        classes=parse_classes(args.classes),
    )


# -- inputs and outputs ----------------------------------------------------------------------------
def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def collect_sources(specs: list[str]) -> list[Path]:
    """Files, folders (their images and videos, not recursive) and globs -> unique paths, in order."""
    found: list[Path] = []
    for spec in specs:
        if is_url(spec):
            raise CliError(
                f"{spec} is a URL; the local engine reads local files only: download it first "
                "(--engine ray reads s3://, gs://, ... URIs)"
            )
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
            if not files:
                raise CliError(f"no images or videos in folder {path}")
            found += files
        elif path.is_file():
            found.append(path)
        elif glob.has_magic(spec):
            files = sorted(
                Path(p) for p in glob.glob(spec, recursive=True)
                if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )  # fmt: skip
            if not files:
                raise MissingFileError(f"no images or videos match {spec!r}")
            found += files
        else:
            raise MissingFileError(f"no such file or folder: {spec}")
    unique: dict[Path, None] = {}
    for p in found:
        unique.setdefault(p.resolve(), None)
    return [Path(os.path.relpath(p)) if _under_cwd(p) else p for p in unique]


def _under_cwd(path: Path) -> bool:
    try:
        path.relative_to(Path.cwd())
    except ValueError:
        return False
    return True


def next_run_dir(root: Path, name: str) -> Path:
    """``root/name``, or ``root/name2``, ``root/name3``... : the first that does not exist yet."""
    candidate = root / name
    n = 2
    while candidate.exists():
        candidate = root / f"{name}{n}"
        n += 1
    return candidate


def unique_stem(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem_2``, ``stem_3``... if already used (two inputs with the same name)."""
    candidate, n = stem, 2
    while candidate in used:
        candidate = f"{stem}_{n}"
        n += 1
    used.add(candidate)
    return candidate
