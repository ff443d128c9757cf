"""Scale-out batch inference on Ray Data: one model per actor, one parquet-friendly row per image.

>>> import ray.data                                                      # doctest: +SKIP
>>> from yolactpp.integrations.ray import predict_dataset, read_image_files
>>> ds = read_image_files("s3://bucket/images/")                         # doctest: +SKIP
>>> predict_dataset(ds, "yolact_plus_resnet50").write_parquet("s3://bucket/results/")  # doctest: +SKIP

Needs Ray Data (``pip install 'yolactpp[ray]'``); importing ``yolactpp`` alone never imports Ray.
"""

from __future__ import annotations

from yolactpp.errors import MissingDependencyError

try:
    import pyarrow  # noqa: F401
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise MissingDependencyError(
        f"yolactpp.integrations.ray needs Ray Data, which is not installed ({exc}): "
        "pip install 'yolactpp[ray]'  (or: pip install 'ray[data]')"
    ) from exc

from yolactpp.integrations.ray.dataset import predict_dataset, read_image_files
from yolactpp.integrations.ray.predictor import Predictor
from yolactpp.integrations.ray.schema import RESULT_SCHEMA

__all__ = ["Predictor", "RESULT_SCHEMA", "predict_dataset", "read_image_files"]
