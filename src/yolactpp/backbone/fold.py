"""Convolution followed by BatchNorm, folded into one convolution at inference.

The modules keep their original parameters (so checkpoints load and save unchanged); at inference
the folded weight ``w * s`` and bias ``(b - mean) * s + beta`` (``s = gamma / sqrt(var + eps)``)
are computed once per dtype/device in float64 and cached. In training mode, or when autograd is
recording, the plain conv -> BatchNorm path runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from yolactpp.errors import InvalidArgumentTypeError

__all__ = ["conv_bn", "folded_conv_bn_params", "set_batchnorm_folding"]

_CACHE_ATTR = "_yolactpp_folded"
_ENABLED_ATTR = "_yolactpp_fold"


def set_batchnorm_folding(module: nn.Module, enabled: bool) -> None:
    """Turn inference-time BatchNorm folding on or off for every BatchNorm in ``module``
    (on by default; off reproduces the straightforward conv -> BatchNorm execution)."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            setattr(m, _ENABLED_ATTR, enabled)
            if not enabled and hasattr(m, _CACHE_ATTR):
                delattr(m, _CACHE_ATTR)


def _signature(tensors: list[torch.Tensor | None]) -> tuple[object, ...]:
    return tuple(None if t is None else (t.data_ptr(), t._version, t.dtype, t.device, t.stride()) for t in tensors)


def folded_conv_bn_params(conv: nn.Module, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of the single convolution equal to ``bn(conv(x))`` in eval mode."""
    weight: torch.Tensor = conv.weight  # type: ignore[assignment]
    bias: torch.Tensor | None = conv.bias  # type: ignore[assignment]
    assert bn.running_mean is not None and bn.running_var is not None
    sources = [weight, bias, bn.weight, bn.bias, bn.running_mean, bn.running_var]
    key = (_signature(sources), bn.eps)
    cached = getattr(bn, _CACHE_ATTR, None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    # Normal (not inference-mode) tensors, so the cache is usable in any later mode.
    with torch.inference_mode(False), torch.no_grad():
        var = bn.running_var.double()
        scale = torch.rsqrt(var + bn.eps) if bn.weight is None else bn.weight.double() / torch.sqrt(var + bn.eps)
        shift = -bn.running_mean.double() * scale if bias is None else (bias.double() - bn.running_mean.double()) * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        folded_w = (weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype)
        folded_b = shift.to(weight.dtype)
    setattr(bn, _CACHE_ATTR, (key, folded_w, folded_b))
    return folded_w, folded_b


def conv_bn(conv: nn.Module, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))``, as one folded convolution when running inference in eval mode (a ``bn``
    that is not a BatchNorm, e.g. an Identity left where one was folded away, just runs)."""
    if not isinstance(bn, nn.BatchNorm2d) or bn.training or torch.is_grad_enabled() or not getattr(bn, _ENABLED_ATTR, True):
        return bn(conv(x))
    weight, bias = folded_conv_bn_params(conv, bn)
    if isinstance(conv, nn.Conv2d):
        return F.conv2d(x, weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    forward_with = getattr(conv, "forward_with_params", None)
    if forward_with is None:
        raise InvalidArgumentTypeError(f"cannot fold BatchNorm into {type(conv).__name__}")
    return forward_with(x, weight, bias)
