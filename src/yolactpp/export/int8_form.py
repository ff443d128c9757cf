"""The network rewritten for int8 quantization: every large multiply becomes a quantizable Conv or MatMul.

Applied to the export copy of the network before an int8 file is written (``model.quantize``);
results equal the plain network's to float rounding. Three rewrites:

- **DCN** (YOLACT++): sampling with ``GridSample`` (float; DCNv2's rule exactly, see
  :mod:`yolactpp.export.dcn_grid_sample`), then the 3x3 weight product as a 1x1 ``Conv`` over the
  9 sampled taps with the following BatchNorm folded in; the quantizer makes that Conv int8 like
  every other backbone convolution (ONNX ``DeformConv`` has no integer form).
- **Prediction head outputs**: the box, class and coefficient 3x3 convolutions read the same
  input, so they become one ``MatMul`` of the input's 3x3 patches (an im2col written with Pad,
  Slice and Concat in NHWC order, which is the head's output layout) by their stacked weights.
  The quantizer gives that MatMul int8 inputs and weights but no output quantization: onnxruntime
  runs it as an integer GEMM with float32 output, so the logits are never rounded to 8 bits.
- **ProtoNet's final 1x1 projection**: a ``MatMul`` in NHWC order (the prototypes' layout), also
  with a float32 output, so the prototypes the masks are assembled from are not rounded to 8 bits.
- The mask re-scoring net is left as it is: its convolutions are quantized in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolactpp.backbone.dcn import ModulatedDeformConv2d
from yolactpp.backbone.fold import folded_conv_bn_params
from yolactpp.export.dcn_grid_sample import deform_conv2d_grid_sample
from yolactpp.export.metadata import ExportError
from yolactpp.heads.prediction import PredictionHead
from yolactpp.heads.protonet import ProtoNet

__all__ = ["HEAD_MATMUL_SCOPE", "im2col_3x3", "use_int8_form"]

#: The module name (in the exported graph's node scopes) of the head's output MatMul.
HEAD_MATMUL_SCOPE = "head_outputs"


def im2col_3x3(y: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, H*W, 9*C]``: each pixel's zero-padded 3x3 neighbourhood, tap-major
    (column ``(dy * 3 + dx) * C + c``), so that ``im2col_3x3(y) @ w.permute(2, 3, 1, 0).reshape(9 * C, O)``
    equals a 3x3, padding-1 convolution in NHWC order."""
    n, c, h, w = y.shape
    padded = F.pad(y.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1))  # [N, H+2, W+2, C]
    taps = [padded[:, dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    return torch.cat(taps, dim=-1).reshape(n, h * w, 9 * c)


class _StackedOutputs(nn.Module):
    """The head's three 3x3 output convolutions as one matrix product over im2col patches."""

    def __init__(self, head: PredictionHead) -> None:
        super().__init__()
        convs = (head.bbox_layer, head.conf_layer, head.mask_layer)
        for conv in convs:
            if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
                raise ExportError(f"int8 form: the head's output convolutions must be 3x3, padding 1, got {conv}")
        self.splits = [conv.out_channels for conv in convs]
        weight = torch.cat([conv.weight.permute(2, 3, 1, 0).reshape(-1, conv.out_channels) for conv in convs], dim=1)
        bias = torch.cat([conv.bias if conv.bias is not None else weight.new_zeros(conv.out_channels) for conv in convs])
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = torch.matmul(im2col_3x3(y), self.weight) + self.bias  # [N, H*W, sum(splits)]
        return tuple(out.split(self.splits, dim=-1))


class _Int8FormHead(PredictionHead):
    head_outputs: _StackedOutputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        loc, conf, coef = self.head_outputs(self.upfeature(x))
        return loc.reshape(n, -1, 4), conf.reshape(n, -1, self.num_logits), torch.tanh(coef.reshape(n, -1, self.mask_dim))


class _Int8FormDeformConv(ModulatedDeformConv2d):
    """The DCN as GridSample sampling + a 1x1 Conv whose weight (BatchNorm folded in) is a constant."""

    product_weight: nn.Parameter

    def forward_with_params(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        offset, mask = self.offsets_and_mask(x)
        return deform_conv2d_grid_sample(
            x, offset, weight, bias, self.stride, self.padding, self.dilation, mask, product_weight=self.product_weight
        )


def _rewrite_dcns(network: nn.Module) -> None:
    """Every DCN becomes :class:`_Int8FormDeformConv`; a BatchNorm right after one (a block's
    ``conv2`` -> ``bn2``) is folded into it first (the exporter folds the plain convolutions itself)."""
    for module in network.modules():
        conv, bn = getattr(module, "conv2", None), getattr(module, "bn2", None)
        if type(conv) is ModulatedDeformConv2d and isinstance(bn, nn.BatchNorm2d):
            weight, bias = folded_conv_bn_params(conv, bn)
            conv.weight = nn.Parameter(weight.clone(), requires_grad=False)
            conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
            module.bn2 = nn.Identity()
    for name, conv in network.named_modules():
        if type(conv) is not ModulatedDeformConv2d:
            continue
        if conv.offset_groups != 1:
            raise ExportError(f"{name}: the int8 form supports DCNs with one offset group, this has {conv.offset_groups}")
        out_c, in_c, kh, kw = conv.weight.shape
        conv.product_weight = nn.Parameter(conv.weight.reshape(out_c, in_c * kh * kw, 1, 1).clone(), requires_grad=False)
        conv.__class__ = _Int8FormDeformConv


class _NhwcProjection(nn.Module):
    """A 1x1 convolution as a matrix product over the channels of each pixel (NCHW in and out)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.kernel_size != (1, 1) or conv.stride != (1, 1) or conv.groups != 1:
            raise ExportError(f"int8 form: ProtoNet's last layer must be a 1x1 convolution, got {conv}")
        weight = conv.weight.reshape(conv.out_channels, conv.in_channels).t()
        self.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
        bias = conv.bias if conv.bias is not None else weight.new_zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.matmul(x.permute(0, 2, 3, 1), self.weight) + self.bias).permute(0, 3, 1, 2)


def use_int8_form(network: nn.Module) -> None:
    """Rewrite ``network`` (an eval-mode export copy) into the int8 form described above."""
    _rewrite_dcns(network)
    proto_net = getattr(network, "proto_net", None)
    if isinstance(proto_net, ProtoNet):
        last = max(i for i, layer in enumerate(proto_net) if isinstance(layer, nn.Conv2d))
        conv = proto_net[last]
        assert isinstance(conv, nn.Conv2d)
        proto_net[last] = _NhwcProjection(conv)
    for module in network.modules():
        if type(module) is PredictionHead:
            module.head_outputs = _StackedOutputs(module)
            del module.bbox_layer, module.conf_layer, module.mask_layer
            module.__class__ = _Int8FormHead
