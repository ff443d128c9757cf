"""The autograd formula of ``yolactpp::deform_conv2d``: its gradients come from the native
``yolactpp::deform_conv2d_backward`` kernels (CPU and CUDA).

Registered by ``_loader`` once the compiled library is loaded (the schemas must exist first),
with ``torch.library.register_autograd``, so eager autograd, ``torch.compile`` and
``torch.export`` all see the same formula. Under autocast the op's C++ autocast kernel has cast
every argument before autograd records the call, so the gradients arrive and leave in the
autocast dtype and the casts' own backward brings them to the parameters' dtype.
"""

from __future__ import annotations

from typing import Any

import torch

__all__: list[str] = []


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
    input, offset, weight, bias, stride, padding, dilation, mask = inputs
    ctx.save_for_backward(input, offset, weight, mask)
    ctx.geometry = (stride, padding, dilation)
    ctx.has_bias = bias is not None


def _backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    input, offset, weight, mask = ctx.saved_tensors
    stride, padding, dilation = ctx.geometry
    grad_input, grad_offset, grad_weight, grad_bias, grad_mask = torch.ops.yolactpp.deform_conv2d_backward(
        grad, input, offset, weight, mask, stride, padding, dilation, ctx.has_bias
    )
    return (
        grad_input,
        grad_offset,
        grad_weight,
        grad_bias if ctx.has_bias else None,
        None,
        None,
        None,
        grad_mask if mask is not None else None,
    )


torch.library.register_autograd("yolactpp::deform_conv2d", _backward, setup_context=_setup_context)
