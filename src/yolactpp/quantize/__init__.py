"""int8 inference on the CPU: ``model.quantize(images)`` -> a quantized :class:`~yolactpp.export.ExportedModel`.

The model is exported to ONNX (:func:`yolactpp.export.export_onnx`), calibrated on a few images
and quantized statically by onnxruntime (:mod:`yolactpp.quantize.onnx_int8`); the result is an
``.onnx`` file with the same metadata, so ``load_exported`` and ``yolactpp predict -m FILE.onnx``
run it unchanged. int8 pays only on CPUs with integer dot-product instructions
(:func:`yolactpp.runtime.int8.int8_support`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from yolactpp.errors import InvalidArgumentError, require_extra
from yolactpp.outputs import check_output_file, staged_file
from yolactpp.quantize.calibration import (
    DEFAULT_CALIBRATION_COUNT,
    CalibrationError,
    CalibrationSource,
    calibration_images,
    read_calibration_images,
    sample_photographs,
)
from yolactpp.runtime.int8 import Int8Support, SlowInt8Warning, int8_support, warn_if_int8_slow

if TYPE_CHECKING:
    from yolactpp.export.predictor import ExportedModel
    from yolactpp.model import YolactPP

__all__ = [
    "DEFAULT_CALIBRATION_COUNT",
    "CalibrationError",
    "Int8Support",
    "SlowInt8Warning",
    "calibration_images",
    "int8_support",
    "quantize_model",
    "read_calibration_images",
    "sample_photographs",
]


def quantize_model(
    model: YolactPP,
    calibration: CalibrationSource = None,
    *,
    count: int | None = None,
    path: str | os.PathLike[str] | None = None,
    progress: bool = True,
    threads: int | None = None,
    overwrite: bool = False,
    weight_bits: int | None = None,
) -> ExportedModel:
    """See :meth:`yolactpp.YolactPP.quantize`."""
    require_extra(("onnx", "onnxscript", "onnxruntime"), "int8", "int8 quantization")
    from yolactpp.export import load_exported
    from yolactpp.export.onnx_export import check_exported, write_onnx
    from yolactpp.quantize.onnx_int8 import quantize_onnx, resolve_weight_bits

    weight_bits = resolve_weight_bits(weight_bits)  # before the slow export

    warn_if_int8_slow()
    out = None
    if path is not None:  # the destination, then every calibration image, before the slow export
        out = check_output_file(path, suffix=".onnx", overwrite=overwrite, what="quantized model")
    images = read_calibration_images(calibration_images(calibration, count))
    keep_dir = None
    try:
        if out is None:
            keep_dir = tempfile.mkdtemp(prefix="yolactpp-int8-")
            out = Path(keep_dir) / f"{model.config.name}-int8.onnx"
        with tempfile.TemporaryDirectory(prefix="yolactpp-int8-") as work, staged_file(out) as staging:
            float_path = write_onnx(model, Path(work) / "float32.onnx", form="int8", verify=False)
            float_model = load_exported(float_path, threads=threads)

            def feeds() -> Iterator[dict[str, np.ndarray]]:
                from tqdm import tqdm

                for image in tqdm(images, desc="calibrating", unit="image", disable=not progress, leave=False):
                    yield float_model.input_feeds([image])

            quantize_onnx(float_path, staging, feeds(), calibration_count=len(images), weight_bits=weight_bits)
            # The int8 file differs from float32 by design: it is only run, not compared.
            check_exported(staging, model.config, float_model.info.top_k, None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowInt8Warning)  # already said above
            quantized = load_exported(out, threads=threads)
    except BaseException:
        if keep_dir is not None:
            shutil.rmtree(keep_dir, ignore_errors=True)
        raise
    if keep_dir is not None:  # the file lives as long as the model that reads it
        weakref.finalize(quantized, shutil.rmtree, keep_dir, ignore_errors=True)
    return quantized
