// Modulated deformable convolution (DCNv2), shared by the CPU and CUDA kernels.
//
// Both backends use the same plan: sample the input at the deformed tap positions into a
// "columns" image of shape [N, C_in, H_out * kh, W_out * kw] (channels_last), where the kh x kw
// block of output pixel (i, j) holds its mask-modulated bilinear samples; a plain convolution
// of the columns with the DCN weight, stride (kh, kw), no padding, is then exactly the DCN
// output. The convolution (oneDNN / cuDNN) does the GEMM; the backends only differ by sampler.
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

/// Fills `columns` ([n, C_in, rows * kh, W_out * kw], channels_last) with the samples of
/// images [image0, image0 + n) and output rows [row0, row0 + rows). `input` is channels_last;
/// `mask` may be undefined (all ones).
using Sampler = std::function<void(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& mask,
    const Geometry& geometry,
    int64_t image0,
    int64_t row0,
    at::Tensor& columns)>;

/// The whole forward: checks, samples in chunks of at most `budget_bytes` of columns, convolves.
/// The result has the input's memory format (channels_last or contiguous).
at::Tensor forward(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask,
    const Sampler& sampler,
    int64_t budget_bytes);

}  // namespace yolactpp::deform_conv
