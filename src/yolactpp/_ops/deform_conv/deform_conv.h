// Modulated deformable convolution (DCNv2): the driver shared by the CPU and CUDA kernels.
//
// Both backends use the same plan: sample the input at the deformed tap positions into a
// "columns" tensor (channels_last) of mask-modulated bilinear samples, then let a plain
// convolution (oneDNN / cuDNN) do the GEMM; the backends only differ by sampler. Two layouts:
// - kBlocks: [N, C_in, H_out * kh, W_out * kw], the kh x kw block of output pixel (i, j) holds
//   its taps; the DCN output is the convolution with the DCN weight at stride (kh, kw).
// - kTapsAsChannels: [N, kh * kw * C_in, H_out, W_out], channel (weight group, tap, channel);
//   the DCN output is a 1x1 convolution with the weight permuted to that channel order.
#pragma once

#include <ATen/core/Tensor.h>

#include "geometry.h"

#include <cstdint>
#include <functional>
#include <tuple>

namespace yolactpp::deform_conv {

/// Validates shapes, dtypes and devices (TORCH_CHECK with a readable message); returns sizes.
Geometry check_inputs(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask);

enum class Layout { kBlocks, kTapsAsChannels };

/// Fills the columns of one chunk (see ChunkJob for where each sample goes). `input` is
/// channels_last; `mask` may be undefined (all ones).
using Sampler = std::function<void(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& mask,
    at::Tensor& columns,
    const ChunkJob& job)>;

/// The forward after `check_inputs` (whose result `g` is): samples in chunks of at most
/// `budget_bytes` of columns and convolves. The result has the input's memory format.
at::Tensor forward(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& mask,
    const Geometry& g,
    const Sampler& sampler,
    int64_t budget_bytes,
    Layout layout);

/// The backward counterpart of a Sampler: for one chunk, given the gradient of its columns
/// (`grad_columns`, laid out as the columns), adds the input gradient into `grad_input`
/// (channels_last, float for bfloat16/half inputs) and writes the offset and mask gradients of the
/// chunk's pixels into `grad_offset` / `grad_mask` (contiguous, as `offset` / `mask`, which are
/// contiguous too; `mask` and `grad_mask` are undefined without a mask).
using Scatter = std::function<void(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& mask,
    const at::Tensor& grad_columns,
    at::Tensor& grad_input,
    at::Tensor& grad_offset,
    at::Tensor& grad_mask,
    const ChunkJob& job)>;

/// Gradients of `forward` for input, offset, weight, bias (empty [0] when `has_bias` is false)
/// and mask (empty [0] without a mask): the columns are sampled again chunk by chunk, the plain
/// convolution's backward gives the columns' and the weight's gradients, and `scatter` turns the
/// columns' gradient into the input, offset and mask gradients.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& mask,
    bool has_bias,
    const Geometry& g,
    const Sampler& sampler,
    const Scatter& scatter,
    int64_t budget_bytes,
    Layout layout);

/// Checks the backward's arguments (those of the forward plus the output gradient's shape).
Geometry check_backward_inputs(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask);

}  // namespace yolactpp::deform_conv
