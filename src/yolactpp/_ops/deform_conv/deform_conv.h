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

}  // namespace yolactpp::deform_conv
