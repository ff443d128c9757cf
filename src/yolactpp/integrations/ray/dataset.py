"""``predict_dataset`` (a Ray Dataset of images -> a Dataset of result rows) and ``read_image_files``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray
import ray.data

from yolactpp.errors import InvalidArgumentError
from yolactpp.integrations.ray.predictor import Predictor, _torch_dtype
from yolactpp.predict_options import PredictOptions

if TYPE_CHECKING:
    import torch

__all__ = ["predict_dataset", "read_image_files"]

def read_image_files(paths: str | list[str], *, file_extensions: list[str] | None = None, **read_args: Any) -> ray.data.Dataset:
    """``ray.data.read_binary_files(paths, include_paths=True)`` set up for :func:`predict_dataset`.

    The files stay encoded until a model actor decodes them, so a corrupt file becomes an error
    row instead of failing the read. The read tasks ask for no CPU (``num_cpus=0``; reading is
    I/O) so that actors holding every core cannot starve them. ``paths`` may be local files or
    folders or any URI Ray Data reads (``s3://``, ``gs://``, ...); ``read_args`` go to Ray.
    """
    read_args.setdefault("num_cpus", 0)
    return ray.data.read_binary_files(paths, include_paths=True, file_extensions=file_extensions, **read_args)


def _cluster_room(num_gpus: float, cpus_per_actor: int) -> int:
    """How many actors fit the cluster (or this machine, before Ray is started)."""
    if ray.is_initialized():
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    else:
        import torch

        cpus, gpus = float(os.cpu_count() or 1), float(torch.cuda.device_count())
    room = gpus // num_gpus if num_gpus > 0 else cpus // cpus_per_actor
    return max(1, int(room))


def _actor_pool(concurrency: int | tuple[int, int] | None, num_gpus: float, cpus_per_actor: int) -> ray.data.ActorPoolStrategy:
    if concurrency is None:
        return ray.data.ActorPoolStrategy(min_size=1, max_size=_cluster_room(num_gpus, cpus_per_actor))
    if isinstance(concurrency, tuple) and len(concurrency) == 2 and all(isinstance(c, int) for c in concurrency):
        low, high = concurrency
        if not 1 <= low <= high:
            raise InvalidArgumentError(f"concurrency (min, max) must satisfy 1 <= min <= max, got {concurrency}")
        return ray.data.ActorPoolStrategy(min_size=low, max_size=high)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidArgumentError(f"concurrency must be an integer >= 1 or a (min, max) pair, got {concurrency!r}")
    return ray.data.ActorPoolStrategy(size=concurrency)


def _model_reference(model: str | os.PathLike[str]) -> str:
    """Local paths become absolute (actors do not share the driver's working directory)."""
    path = Path(model)
    if isinstance(model, os.PathLike) or path.exists():
        return str(path.resolve())
    return str(model)


def predict_dataset(
    ds: ray.data.Dataset,
    model: str | os.PathLike[str],
    *,
    batch_size: int = 4,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float = 0,
    cpus_per_actor: int = 1,
    config: str | None = None,
    device: str | None = None,
    dtype: "str | torch.dtype" = "float32",
    ray_remote_args: Mapping[str, Any] | None = None,
    options: PredictOptions | None = None,
    **option_kwargs: Any,
) -> ray.data.Dataset:
    """Run ``model`` over a Dataset of images with a pool of :class:`Predictor` actors (lazily).

    ``ds`` holds images as ``read_image_files`` / ``read_binary_files`` (``"bytes"`` + ``"path"``),
    ``read_images`` (``"image"``, ``mode="RGB"`` advised) or plain ``"path"`` rows give them. Each
    actor loads ``model`` once and predicts ``batch_size`` images per call.

    Each actor reserves ``cpus_per_actor`` CPUs (its torch threads) and ``num_gpus`` GPUs
    (fractions share a GPU). ``concurrency`` is the number of actors, or a (min, max) pair for an
    autoscaling pool; by default the pool grows from 1 to as many actors as the cluster's CPUs
    (``num_gpus=0``) or GPUs allow. ``ray_remote_args`` go to ``map_batches`` as they are (e.g.
    ``{"memory": 4 * 2**30}``). ``options`` (a :class:`~yolactpp.PredictOptions`; keywords such
    as ``score_threshold``, ``classes``, ``max_detections`` build or override one) are checked
    here, before any actor starts.

    Returns the Dataset of result rows (:data:`~yolactpp.integrations.ray.RESULT_SCHEMA`), one per
    input image; write it with ``write_parquet`` / ``write_json`` or iterate over it.
    """
    predict_options = PredictOptions.build(options, **option_kwargs)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if isinstance(cpus_per_actor, bool) or not isinstance(cpus_per_actor, int) or cpus_per_actor < 1:
        raise InvalidArgumentError(f"cpus_per_actor must be an integer >= 1, got {cpus_per_actor!r}")
    if not num_gpus >= 0:
        raise InvalidArgumentError(f"num_gpus must be >= 0, got {num_gpus!r}")
    _torch_dtype(dtype)
    pool = _actor_pool(concurrency, num_gpus, cpus_per_actor)
    constructor = dict(model=_model_reference(model), config=config, device=device, dtype=dtype, num_threads=cpus_per_actor)
    return ds.map_batches(
        Predictor,
        fn_constructor_kwargs={**constructor, "options": predict_options},
        batch_size=batch_size,
        batch_format="numpy",
        compute=pool,
        num_cpus=cpus_per_actor,
        num_gpus=num_gpus or None,
        **dict(ray_remote_args or {}),
    )
