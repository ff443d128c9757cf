"""``YolactPP``: the user-facing model — load weights, predict, save."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from typing_extensions import Self, override

from yolactpp._facts import MODEL_DTYPES
from yolactpp.builder import build_network
from yolactpp.checkpoint import LoadedWeights, read_original
from yolactpp.concurrency import UseGuard
from yolactpp.config import DetectConfig, ModelConfig
from yolactpp.detect import detect
from yolactpp.errors import InvalidArgumentError, InvalidArgumentTypeError
from yolactpp.network import NetworkOutput, YolactNetwork, detection_dtype
from yolactpp.postprocess import assemble_masks, boxes_to_pixels, mask_iou_scores
from yolactpp.predict_options import ResolvedOptions
from yolactpp.predictor import Predictor, above_score
from yolactpp.preprocess import preprocess
from yolactpp.pretrained import load_network
from yolactpp.results import Detections
from yolactpp.serialization import save_pretrained

if TYPE_CHECKING:
    from yolactpp.export.predictor import ExportedModel
    from yolactpp.quantize.calibration import CalibrationSource
    from yolactpp.train.options import TrainOptions
    from yolactpp.train.trainer import DataSource, TrainResult

__all__ = ["YolactPP"]

_SUPPORTED_DTYPES = tuple(getattr(torch, name) for name in MODEL_DTYPES)


class YolactPP(nn.Module, Predictor):
    """A YOLACT / YOLACT++ instance-segmentation model.

    Build one with :meth:`from_pretrained`; call :meth:`predict` / :meth:`iter_predict` on images
    (the surface every runtime shares, :class:`yolactpp.predictor.Predictor`). The model follows
    ``.to(device)`` and ``.to(dtype)``: after ``model.to(torch.float64)`` every step, from
    preprocessing to mask re-scoring, runs in float64. As with any torch module, ``.to(...)``
    converts the model in place and returns the same object.

    Threads: one model may serve :meth:`predict` / :meth:`iter_predict` from many threads at once
    (results equal serial ones), but must not be converted while it does; a conversion that would
    overlap a prediction, or the reverse, raises :class:`~yolactpp.concurrency.ModelBusyError`.
    """

    def __init__(self, config: ModelConfig, *, network: YolactNetwork | None = None) -> None:
        """A model for ``config``: with freshly initialized weights, or around ``network`` (built
        for the same config, e.g. by :func:`yolactpp.builder.build_network`)."""
        super().__init__()
        self._guard = UseGuard()
        if network is not None and network.config != config:
            raise InvalidArgumentError("network was built for another config than the one given")
        self.config = config
        self.network = network if network is not None else YolactNetwork(config)
        # channels_last is the fast layout for oneDNN/cuDNN convolutions and the native DCN;
        # ``.to(memory_format=torch.contiguous_format)`` switches back.
        self.to(memory_format=torch.channels_last)
        self.eval()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        config: ModelConfig | str | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        revision: str | None = None,
        force_download: bool = False,
        class_names: Sequence[str] | None = None,
    ) -> Self:
        """Load a model from, in this order of precedence:

        - a local original ``<config>_<epoch>_<iteration>.pth`` file (config inferred from the name),
        - a local folder written by :meth:`save_pretrained` / :func:`yolactpp.convert`,
        - a published model name (``yolactpp.hub.load_manifest()``), downloaded through
          ``huggingface_hub`` (its cache, ``HF_HOME``, ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` apply),
          verified and converted once,
        - ``"owner/name"``: a :meth:`save_pretrained` folder uploaded to the Hugging Face Hub.

        ``config`` (a :class:`ModelConfig` or a registered name) replaces the inferred/stored one;
        ``revision`` pins a hub branch, tag or commit; ``force_download`` refetches and reconverts.
        ``class_names`` names the classes of weights trained on another dataset, e.g. an original
        ``.pth`` trained with ``config="yolact_base"`` on 5 classes (without names, such a file's
        classes are called ``class_0``, ... with a warning); :meth:`save_pretrained` stores them.
        """
        network = load_network(name_or_path, config, class_names, revision=revision, force_download=force_download)
        model = cls(network.config, network=network)
        if device is not None or dtype is not None:
            model.to(device=device, dtype=dtype)
        return model

    @classmethod
    def from_weights(cls, weights: LoadedWeights) -> Self:
        """The model of weights already read (from any source): built and strictly loaded."""
        return cls(weights.config, network=build_network(weights))

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` (reload with :meth:`from_pretrained`)."""
        return save_pretrained(self, directory)

    @classmethod
    def from_original_checkpoint(
        cls,
        path: str | os.PathLike[str],
        config: ModelConfig | str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> Self:
        """Load one of the original ``<config>_<epoch>_<iteration>.pth`` files (or a compatible one)."""
        return cls.from_weights(read_original(path, config, class_names))

    # -- properties ---------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        """The floating-point type of the weights (and of every computation in ``predict``)."""
        return next(self.parameters()).dtype

    @property
    @override
    def runtime(self) -> str:
        """What executes the model: ``"torch"`` (eager PyTorch)."""
        return "torch"

    @property
    def device(self) -> torch.device:
        """The device the weights are on."""
        return next(self.parameters()).device

    def _memory_format(self) -> torch.memory_format:
        """channels_last when the model was converted with ``.to(memory_format=torch.channels_last)``."""
        weight = next(p for p in self.network.parameters() if p.dim() == 4)
        if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
            return torch.channels_last
        return torch.contiguous_format

    @override
    def _apply(self, fn: Any, recurse: bool = True) -> YolactPP:
        # Every in-place conversion (.to, .cuda, .half, ...) goes through here: never during a prediction.
        with self._guard.converting():
            return super()._apply(fn, recurse)

    @override
    def forward(self, x: torch.Tensor) -> NetworkOutput:
        """Raw network outputs for a preprocessed batch ``[B, 3, S, S]``."""
        return self.network(x)

    # -- inference: the eager runtime's step of the predictor contract (yolactpp.predictor) ----
    @override
    def _infer(self, arrays: list[np.ndarray], options: ResolvedOptions) -> list[Detections]:
        dtype = self.dtype
        if dtype not in _SUPPORTED_DTYPES:
            raise InvalidArgumentTypeError(f"unsupported model dtype {dtype}")
        with self._guard.predicting(), torch.inference_mode():
            prepared = preprocess(arrays, self.config.preprocess, dtype=detection_dtype(dtype), device=self.device)
            x = prepared.tensor.to(dtype=dtype, memory_format=self._memory_format())
            out = self.network(x)
            return [
                above_score(self._postprocess(out, i, size, options.settings, options.class_ids), options.score_threshold)
                for i, size in enumerate(prepared.sizes)
            ]

    def _postprocess(
        self,
        out: NetworkOutput,
        index: int,
        size: tuple[int, int],
        settings: DetectConfig,
        class_ids: tuple[int, ...] | None = None,
    ) -> Detections:
        height, width = size
        conf = out.conf[index]
        if class_ids is None:
            raw = detect(out.loc[index], conf, out.coefficients[index], out.priors, settings)
        else:
            # Detect over the background column plus the chosen classes only, then map labels back.
            ids = torch.tensor(class_ids, dtype=torch.long, device=conf.device)
            columns = torch.cat([ids.new_zeros(1), ids + 1])
            raw = detect(out.loc[index], conf[:, columns], out.coefficients[index], out.priors, settings)
            raw.labels = ids[raw.labels]
        soft_masks = assemble_masks(out.proto[index], raw.coefficients, raw.boxes)
        scores = raw.scores
        mask_iou = None
        if self.network.maskiou_net is not None:
            mask_iou = mask_iou_scores(self.network.maskiou_net, soft_masks, raw.labels)
            scores = scores * mask_iou
        return Detections(
            boxes=boxes_to_pixels(raw.boxes, width, height),
            scores=scores,
            labels=raw.labels,
            names=self.config.class_names,
            image_size=(height, width),
            soft_masks=soft_masks,
            box_scores=raw.scores,
            mask_iou=mask_iou,
            category_ids=self.config.category_ids,
        )

    def export(self, path: str | os.PathLike[str], format: str = "onnx", **kwargs: Any) -> Path:
        """Export the whole model (network through detection, masks and re-scoring) to one file.

        ``format="onnx"``: standard ONNX ops, runs on onnxruntime without torch
        (:func:`yolactpp.export.export_onnx`; ``opset``, ``dtype``, ``max_detections``, ``top_k``).
        ``format="pt2"``: a torch.export + AOTInductor package
        (:func:`yolactpp.export.export_pt2`). Load either with :func:`yolactpp.export.load_exported`.

        ``path`` must end in the format's suffix and not exist (``overwrite=True`` replaces it);
        it is checked before the export starts. The file is run once in a child process and
        compared with this model before it takes its name (``verify=False`` skips that). While the
        model is traced, predictions on it from other threads raise
        :class:`~yolactpp.concurrency.ModelBusyError` (and the reverse).
        """
        from yolactpp import export as exporters

        if format == "onnx":
            return exporters.export_onnx(self, path, **kwargs)
        if format == "pt2":
            return exporters.export_pt2(self, path, **kwargs)
        raise InvalidArgumentError(f"format must be 'onnx' or 'pt2', got {format!r}")

    def quantize(
        self,
        calibration_images: CalibrationSource = None,
        *,
        count: int | None = None,
        path: str | os.PathLike[str] | None = None,
        progress: bool = True,
        threads: int | None = None,
        overwrite: bool = False,
        weight_bits: int | None = None,
    ) -> ExportedModel:
        """An int8 copy of this model for the CPU, with the same ``predict`` / ``iter_predict``.

        The model is exported to ONNX, its activation ranges measured on ``calibration_images``
        (a folder, an image file, a list or any iterable of images as ``predict`` takes them; at
        most ``count``, default 32; ``None``: five public-domain photographs shipped with
        scikit-image) and quantized by onnxruntime (``pip install 'yolactpp[int8]'``). The result
        is an ONNX file at ``path`` (default: a temporary file kept while the returned model
        lives; ``.save(path)`` copies it) that ``load_exported`` and ``yolactpp predict -m`` read
        without recalibrating. ``threads`` caps onnxruntime's threads. Warns
        (:class:`~yolactpp.quantize.SlowInt8Warning`) on a CPU without int8 dot-product
        instructions, where int8 does not pay. See docs/performance.md for speed and accuracy.
        An existing ``path`` is replaced only with ``overwrite=True``; unreadable calibration images
        are skipped with a warning, all of them read before the export starts. ``weight_bits``:
        8 (full range) or 7; by default 8 where this CPU has int8 dot-product instructions, else 7
        (without them 8-bit weights can saturate onnxruntime's 16-bit intermediate sums).
        """
        from yolactpp.quantize import quantize_model

        return quantize_model(
            self,
            calibration_images,
            count=count,
            path=path,
            progress=progress,
            threads=threads,
            overwrite=overwrite,
            weight_bits=weight_bits,
        )

    def fit(
        self,
        train_data: DataSource,
        val_data: DataSource | None = None,
        options: TrainOptions | None = None,
        **kwargs: Any,
    ) -> TrainResult:
        """Fine-tune this model on COCO-format data; return the run's
        :class:`~yolactpp.train.trainer.TrainResult` (``.model`` is the trained model, ``.model_dir``
        its saved folder).

        ``train_data`` / ``val_data``: an ``(annotations JSON, image folder)`` pair or a
        :class:`~yolactpp.train.coco_dataset.CocoDataset`. ``options`` (a
        :class:`~yolactpp.TrainOptions`) or its fields as keywords: ``output_dir``, ``iterations``, ``batch_size``, ``lr``, ... The
        trained model predicts the dataset's classes and writes its category ids in ``to_coco``;
        when the class count differs from this model's, only the class-dependent layers start
        afresh. This model is left as it is. ``engine="ray"`` trains on Ray Train workers; under
        ``torchrun`` each process trains its share of the batch. See docs/training.md.
        """
        from yolactpp.train.launch import train
        from yolactpp.train.options import TrainOptions as Options

        return train(self, train_data, val_data, Options.build(options, **kwargs))

    @override
    def extra_repr(self) -> str:
        return f"config={self.config.name!r}"
