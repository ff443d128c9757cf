"""Shared by the ONNX and pt2 exporters: the traceable graph, example inputs and torch.export."""

from __future__ import annotations

import copy
import numbers
from typing import TYPE_CHECKING, Any

import torch

from yolactpp._facts import EXPORT_DTYPES, first_line
from yolactpp.backbone.fold import set_batchnorm_folding
from yolactpp.config import MAX_DETECTIONS, MAX_TOP_K
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError
from yolactpp.export.graph import INPUT_NAMES, DeploymentGraph, build_graph, output_names
from yolactpp.export.metadata import ExportError, ExportInfo

if TYPE_CHECKING:
    from yolactpp.model import YolactPP

__all__ = ["DTYPES", "check_limit", "example_inputs", "export_info", "prepare_graph", "trace", "trace_model"]

DTYPES = {name: getattr(torch, name) for name in EXPORT_DTYPES}


def prepare_graph(
    model: YolactPP,
    dtype: str,
    max_detections: int | None,
    top_k: int | None,
    use_topk: bool,
    form: str = "standard",
) -> DeploymentGraph:
    """A copy of the model's network in ``dtype`` on the CPU, ready to trace (the model is untouched).

    BatchNorm folding is turned off in the copy: its per-call weight cache is a side effect that
    tracing cannot keep, and every runtime folds Conv+BatchNormalization itself. The prior cache is
    filled first, so the priors become a constant of the graph. ``form``: ``"standard"``,
    ``"grid_sample"`` (DCN without ``DeformConv``) or ``"int8"`` (:mod:`yolactpp.export.int8_form`).
    """
    if dtype not in DTYPES:
        raise InvalidArgumentError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    max_detections = check_limit("max_detections", max_detections, MAX_DETECTIONS)
    top_k = check_limit("top_k", top_k, MAX_TOP_K)
    network = copy.deepcopy(model.network).to(device="cpu", dtype=DTYPES[dtype]).eval()
    set_batchnorm_folding(network, False)
    if form == "grid_sample":
        from yolactpp.export.dcn_grid_sample import use_grid_sample_dcn

        use_grid_sample_dcn(network)
    elif form == "int8":
        from yolactpp.export.int8_form import use_int8_form

        use_int8_form(network)
    elif form != "standard":
        raise InvalidArgumentError(f"unknown export form {form!r}")
    size = model.config.preprocess.size
    with torch.no_grad():
        network(torch.zeros(1, 3, size, size, dtype=DTYPES[dtype]).contiguous(memory_format=torch.channels_last))
    for p in network.parameters():
        p.requires_grad_(False)
    return build_graph(network, model.config, max_detections, top_k, use_topk).eval()


def check_limit(name: str, value: object, maximum: int) -> int | None:
    """An export limit (``max_detections``, ``top_k``): ``None`` or a whole number in [1, maximum]."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentTypeError(f"{name} must be a whole number, got {value!r}")
    if not 1 <= int(value) <= maximum:
        raise InvalidArgumentError(f"{name} must be from 1 to {maximum}, got {value}")
    return int(value)


def trace_model(
    model: YolactPP,
    dtype: str,
    max_detections: int | None,
    top_k: int | None,
    use_topk: bool,
    form: str = "standard",
) -> tuple[DeploymentGraph, torch.export.ExportedProgram]:
    """:func:`prepare_graph` and :func:`trace`, with predictions on ``model`` held off meanwhile
    (tracing patches torch's global state; see :class:`yolactpp.concurrency.UseGuard`)."""
    with model._guard.converting("export"):
        graph = prepare_graph(model, dtype, max_detections, top_k, use_topk, form)
        return graph, trace(graph)


def example_inputs(graph: DeploymentGraph, batch: int = 2) -> tuple[torch.Tensor, ...]:
    config = graph.network.config
    size = config.preprocess.size
    return (
        torch.zeros(batch, 3, size, size),
        torch.tensor(config.detect.conf_threshold, dtype=torch.float32),
        torch.tensor(config.detect.iou_threshold, dtype=torch.float32),
        torch.tensor(graph.max_top_k, dtype=torch.int64),
        torch.ones(config.num_classes, dtype=torch.bool),
    )


def dynamic_shapes() -> tuple[Any, ...]:
    """A dynamic batch dimension on ``images``; the settings are fixed-shape."""
    return ({0: torch.export.Dim("batch", min=1, max=4096)}, None, None, None, None)


def trace(graph: DeploymentGraph) -> torch.export.ExportedProgram:
    """torch.export of the graph with a dynamic batch; failures become :class:`ExportError`."""
    try:
        with torch.no_grad():
            return torch.export.export(graph, example_inputs(graph), dynamic_shapes=dynamic_shapes(), strict=False)
    except Exception as exc:
        raise ExportError(f"torch.export could not trace {graph.network.config.name!r}: {first_line(exc)}") from exc


def export_info(graph: DeploymentGraph, fmt: str, dtype: str, opset: int | None) -> ExportInfo:
    from yolactpp._version import __version__

    return ExportInfo(
        format=fmt,
        dtype=dtype,
        max_detections=graph.max_detections,
        top_k=graph.max_top_k,
        inputs=INPUT_NAMES,
        outputs=output_names(graph.network.config),
        opset=opset,
        yolactpp_version=__version__,
    )
