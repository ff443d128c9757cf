"""The module that gets exported: normalized images in, fixed-size padded detections out.

It runs the network, :func:`yolactpp.detect.padded.padded_detect`, mask assembly and cropping at
prototype resolution and (YOLACT++) the mask re-scoring net, so the exported file holds the whole
model; what is left to the caller depends on each image's own size (pixel boxes, full-size masks).
"""

from __future__ import annotations

import torch
from torch import nn

from yolactpp.config import ModelConfig
from yolactpp.detect.padded import padded_detect
from yolactpp.network import YolactNetwork, detection_dtype
from yolactpp.postprocess import crop_masks

__all__ = ["INPUT_NAMES", "DeploymentGraph", "output_names"]

#: Graph inputs, in order: the normalized batch, then the detection settings.
INPUT_NAMES = ("images", "conf_threshold", "iou_threshold", "top_k", "class_mask")


def output_names(config: ModelConfig) -> tuple[str, ...]:
    """Graph outputs, in order (``mask_iou`` only for YOLACT++ models)."""
    names = ("count", "boxes", "scores", "box_scores", "labels", "soft_masks")
    return names + (("mask_iou",) if config.use_maskiou else ())


class DeploymentGraph(nn.Module):
    """``images`` [B, 3, S, S] float32 (normalized) + settings -> padded detections.

    Outputs (M = ``max_detections``): ``count`` [B] int64; ``boxes`` [B, M, 4] relative (x1, y1,
    x2, y2); ``scores`` [B, M] final (after re-scoring); ``box_scores`` [B, M]; ``labels`` [B, M]
    int64; ``soft_masks`` [B, M, Hp, Wp] sigmoid masks cropped to their boxes; YOLACT++ adds
    ``mask_iou`` [B, M]. Rows past ``count`` are padding.
    """

    def __init__(self, network: YolactNetwork, max_top_k: int, max_detections: int, use_topk: bool) -> None:
        super().__init__()
        self.network = network
        self.max_top_k = max_top_k
        self.max_detections = max_detections
        self.use_topk = use_topk

    def forward(
        self,
        images: torch.Tensor,
        conf_threshold: torch.Tensor,
        iou_threshold: torch.Tensor,
        top_k: torch.Tensor,
        class_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        weight_dtype = next(self.network.parameters()).dtype
        out = self.network(images.to(weight_dtype))
        dtype = detection_dtype(weight_dtype)
        det = padded_detect(
            out.loc,
            out.conf,
            out.coefficients,
            out.priors,
            conf_threshold=conf_threshold.to(dtype),
            iou_threshold=iou_threshold.to(dtype),
            top_k=top_k,
            class_mask=class_mask,
            max_top_k=self.max_top_k,
            max_detections=self.max_detections,
            use_topk=self.use_topk,
        )
        batch, m = det.scores.shape
        _, hp, wp, dim = out.proto.shape
        logits = torch.matmul(out.proto.reshape(batch, hp * wp, dim), det.coefficients.transpose(1, 2))  # [B, HpWp, M]
        masks = torch.sigmoid(logits).transpose(1, 2)
        masks = crop_masks(masks.reshape(batch * m, hp, wp), det.boxes.reshape(-1, 4)).view(batch, m, hp, wp)
        outputs: tuple[torch.Tensor, ...] = (det.count, det.boxes, det.scores, det.scores, det.labels, masks)
        maskiou_net = self.network.maskiou_net
        if maskiou_net is not None:
            per_class = maskiou_net(masks.reshape(batch * m, 1, hp, wp))
            mask_iou = per_class.gather(1, det.labels.reshape(-1, 1)).view(batch, m)
            outputs = (det.count, det.boxes, det.scores * mask_iou, det.scores, det.labels, masks, mask_iou)
        return outputs


def build_graph(
    network: YolactNetwork, config: ModelConfig, max_detections: int | None, top_k: int | None, use_topk: bool
) -> DeploymentGraph:
    """The graph with the config's detection limits unless overridden."""
    return DeploymentGraph(
        network,
        max_top_k=config.detect.top_k if top_k is None else int(top_k),
        max_detections=config.detect.max_detections if max_detections is None else int(max_detections),
        use_topk=use_topk,
    )
