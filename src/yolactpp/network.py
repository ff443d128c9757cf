"""The YOLACT network: normalized input -> prototypes and per-prior predictions."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from yolactpp.config import ConfigError, ModelConfig
from yolactpp.fpn import FPN
from yolactpp.heads.maskiou import MaskIoUNet
from yolactpp.heads.prediction import PredictionHead
from yolactpp.heads.priors import make_priors
from yolactpp.heads.protonet import ProtoNet
from yolactpp.registry import get_backbone_builder

__all__ = ["NetworkOutput", "RawOutput", "YolactNetwork", "detection_dtype"]


def detection_dtype(compute_dtype: torch.dtype) -> torch.dtype:
    """The dtype detection and postprocessing run in: float32 for half-precision networks."""
    return torch.float32 if compute_dtype in (torch.bfloat16, torch.float16) else compute_dtype


@dataclass
class NetworkOutput:
    """Raw predictions for a batch: the inputs of detection.

    ``loc`` [B, P, 4] box deltas, ``conf`` [B, P, C+1] softmax scores, ``coefficients``
    [B, P, k] (tanh), ``priors`` [P, 4], ``proto`` [B, Hp, Wp, k] (ReLU), and the intermediate
    ``backbone`` and ``fpn`` features (kept for inspection and parity checks).
    """

    loc: torch.Tensor
    conf: torch.Tensor
    coefficients: torch.Tensor
    priors: torch.Tensor
    proto: torch.Tensor
    backbone: tuple[torch.Tensor, ...]
    fpn: list[torch.Tensor]


@dataclass
class RawOutput:
    """Pre-activation predictions for a batch, in the network's dtype: what training losses take.

    ``loc`` [B, P, 4] box deltas, ``conf_logits`` [B, P, C+1] (no softmax), ``coefficients``
    [B, P, k] (tanh), ``priors`` [P, 4] (cx, cy, w, h as fractions of the input), ``proto``
    [B, Hp, Wp, k] (ReLU), the ``backbone`` stages and the ``fpn`` levels (P3 first; the training
    semantic-segmentation head reads P3).
    """

    loc: torch.Tensor
    conf_logits: torch.Tensor
    coefficients: torch.Tensor
    priors: torch.Tensor
    proto: torch.Tensor
    backbone: tuple[torch.Tensor, ...]
    fpn: list[torch.Tensor]


class YolactNetwork(nn.Module):
    """Backbone -> FPN -> (ProtoNet on P3, shared prediction head on P3..P7) [-> MaskIoUNet].

    Module and parameter names match the original checkpoints, so their state dicts load
    directly (after the original's key rules; see :mod:`yolactpp.checkpoint`).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = get_backbone_builder(config.backbone.name)(config.backbone)
        try:
            in_channels = tuple(self.backbone.channels[i] for i in config.backbone.selected_layers)
        except IndexError:
            raise ConfigError(
                f"selected_layers {config.backbone.selected_layers} out of range for backbone "
                f"{config.backbone.name!r} with {len(self.backbone.channels)} stages"
            ) from None
        self.fpn = FPN(in_channels, config.fpn_channels, config.num_downsample)
        self.proto_net = ProtoNet(config.fpn_channels, config.mask_dim)
        self.prediction_layers = nn.ModuleList(
            [PredictionHead(config.fpn_channels, config.anchors.per_location, config.num_classes, config.mask_dim)]
        )
        self.maskiou_net = MaskIoUNet(config.maskiou_channels, config.num_classes) if config.use_maskiou else None
        self._prior_cache: dict[tuple[object, ...], torch.Tensor] = {}

    def priors(self, feature_sizes: list[tuple[int, int]], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Priors for these FPN sizes, cached per (sizes, dtype, device)."""
        key = (tuple(feature_sizes), dtype, device)
        cached = self._prior_cache.get(key)
        if cached is None:
            cached = make_priors(self.config.anchors, feature_sizes, self.config.preprocess.size, dtype, device)
            self._prior_cache[key] = cached
        return cached

    def forward_raw(self, x: torch.Tensor) -> RawOutput:
        """Backbone, FPN, ProtoNet and head without the softmax or any dtype change."""
        stages = self.backbone(x)
        features = self.fpn([stages[i] for i in self.config.backbone.selected_layers])
        proto = self.proto_net(features[0]).permute(0, 2, 3, 1)
        head = self.prediction_layers[0]
        locs, confs, coefs = [], [], []
        for level in features:
            loc, conf, coef = head(level)
            locs.append(loc)
            confs.append(conf)
            coefs.append(coef)
        priors = self.priors([tuple(f.shape[-2:]) for f in features], detection_dtype(x.dtype), x.device)
        return RawOutput(
            loc=torch.cat(locs, dim=1),
            conf_logits=torch.cat(confs, dim=1),
            coefficients=torch.cat(coefs, dim=1),
            priors=priors,
            proto=proto,
            backbone=stages,
            fpn=features,
        )

    def forward(self, x: torch.Tensor) -> NetworkOutput:
        raw = self.forward_raw(x)
        # Detection and mask assembly are sensitive: half-precision networks hand them float32.
        out_dtype = detection_dtype(x.dtype)
        return NetworkOutput(
            loc=raw.loc.to(out_dtype),
            conf=torch.softmax(raw.conf_logits, dim=-1, dtype=out_dtype),
            coefficients=raw.coefficients.to(out_dtype),
            priors=raw.priors,
            proto=raw.proto.to(out_dtype),
            backbone=raw.backbone,
            fpn=raw.fpn,
        )
