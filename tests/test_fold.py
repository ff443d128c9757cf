"""Inference-time BatchNorm folding: same results, cache invalidation, off switch."""

from __future__ import annotations

import torch
from torch import nn

from yolactpp.backbone.dcn import ModulatedDeformConv2d
from yolactpp.backbone.fold import conv_bn, set_batchnorm_folding


def _bn(channels: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(channels).eval()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    return bn


def test_folded_conv_equals_conv_then_bn() -> None:
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(8, 16, 3, padding=1, bias=False).double(), _bn(16).double()
    x = torch.randn(2, 8, 12, 12, dtype=torch.float64)
    with torch.inference_mode():
        folded = conv_bn(conv, bn, x)
    torch.testing.assert_close(folded, bn(conv(x)), rtol=1e-13, atol=1e-13)


def test_folded_dcn_equals_dcn_then_bn() -> None:
    torch.manual_seed(0)
    dcn, bn = ModulatedDeformConv2d(8, 8, 3, stride=2).double(), _bn(8).double()
    with torch.no_grad():
        dcn.conv_offset_mask.weight.normal_(0, 0.1)
        dcn.bias.normal_()
    x = torch.randn(1, 8, 11, 11, dtype=torch.float64)
    with torch.inference_mode():
        folded = conv_bn(dcn, bn, x)
        plain = bn(dcn(x))
    torch.testing.assert_close(folded, plain, rtol=1e-12, atol=1e-12)


def test_cache_follows_parameter_changes_and_dtype() -> None:
    conv, bn = nn.Conv2d(4, 4, 1, bias=False), _bn(4)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        first = conv_bn(conv, bn, x)
        bn.running_mean.add_(1.0)  # in-place edit (like load_state_dict) must invalidate the cache
        second = conv_bn(conv, bn, x)
        torch.testing.assert_close(second, bn(conv(x)))
        assert not torch.allclose(first, second)
        conv.double(), bn.double()
        assert conv_bn(conv, bn, x.double()).dtype == torch.float64


def test_switch_off_and_training_use_plain_batchnorm() -> None:
    conv, bn = nn.Conv2d(4, 4, 1, bias=False), _bn(4)
    module = nn.ModuleDict({"conv": conv, "bn": bn})
    calls = []
    bn.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        conv_bn(conv, bn, x)
        assert calls == []  # folded: the BatchNorm module is not called
        set_batchnorm_folding(module, False)
        conv_bn(conv, bn, x)
        assert calls == [1]
        set_batchnorm_folding(module, True)
        bn.train()
        conv_bn(conv, bn, x)
        assert calls == [1, 1]
