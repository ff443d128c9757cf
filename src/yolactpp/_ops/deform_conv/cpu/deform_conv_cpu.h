// Pieces of the CPU DCN kernels shared by the forward (deform_conv_kernel.cpp) and the backward
// (deform_conv_backward_kernel.cpp): element conversions, the sampler and the layout choice.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/bit_cast.h>

#include <cstdint>

#include "../deform_conv.h"

namespace yolactpp::deform_conv {

/// Loads an element as its accumulation type and rounds back; written so loops vectorise.
template <typename T>
struct Elem {
  using acc = float;
  static acc load(T v) { return static_cast<acc>(v); }
  static T store(acc v) { return static_cast<T>(v); }
};

template <>
struct Elem<double> {
  using acc = double;
  static acc load(double v) { return v; }
  static double store(double v) { return v; }
};

template <>
struct Elem<c10::BFloat16> {
  using acc = float;
  static float load(c10::BFloat16 v) { return c10::bit_cast<float>(static_cast<uint32_t>(v.x) << 16); }
  static c10::BFloat16 store(float v) {  // round to nearest even, NaN stays NaN
    const uint32_t u = c10::bit_cast<uint32_t>(v);
    const uint16_t bits = v != v ? uint16_t{0x7FC0} : static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    return c10::BFloat16(bits, c10::BFloat16::from_bits());
  }
};

template <typename T>
using Acc = typename Elem<T>::acc;

/// Columns of one chunk on the CPU stay within this many bytes; the convolution reads them next.
constexpr int64_t kCpuBudgetBytes = int64_t{32} << 20;

/// The forward's sampler on the CPU (see Sampler), parallel over output pixels.
void sample_cpu(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& mask,
    at::Tensor& columns,
    const ChunkJob& chunk);

/// The columns layout the CPU kernels use for this call (forward and backward must agree).
Layout cpu_layout(const at::Tensor& input, const at::Tensor& weight, const Geometry& g);

}  // namespace yolactpp::deform_conv
