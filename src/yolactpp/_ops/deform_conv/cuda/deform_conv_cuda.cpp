// DCNv2 on CUDA: the sampling and scatter kernels (deform_conv_kernel.cu) plugged into the shared
// forward and backward drivers (../deform_conv.cpp), whose convolutions run on cuDNN.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../deform_conv.h"
#include "deform_conv_cuda.h"

namespace yolactpp::deform_conv {
namespace {

void sample_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, at::Tensor& columns,
                 const ChunkJob& job) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "yolactpp::deform_conv2d_cuda", [&] {
    C10_CUDA_CHECK(launch_sample<scalar_t>(input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
                                           mask.defined() ? mask.const_data_ptr<scalar_t>() : nullptr,
                                           columns.mutable_data_ptr<scalar_t>(), job, stream));
  });
}

void scatter_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                  const at::Tensor& grad_columns, at::Tensor& grad_input, at::Tensor& grad_offset,
                  at::Tensor& grad_mask, const ChunkJob& job) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "yolactpp::deform_conv2d_backward_cuda",
                                  [&] {
    using A = at::opmath_type<scalar_t>;
    const cudaError_t status = launch_scatter<scalar_t, A>(
        input.const_data_ptr<scalar_t>(), offset.const_data_ptr<scalar_t>(),
        mask.defined() ? mask.const_data_ptr<scalar_t>() : nullptr, grad_columns.const_data_ptr<scalar_t>(),
        grad_input.mutable_data_ptr<A>(), grad_offset.mutable_data_ptr<scalar_t>(),
        mask.defined() ? grad_mask.mutable_data_ptr<scalar_t>() : nullptr, job, stream);
    C10_CUDA_CHECK(status);
  });
}

/// Columns for one chunk on the GPU stay within this many bytes.
constexpr int64_t kCudaBudgetBytes = int64_t{256} << 20;

at::Tensor deform_conv2d_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                              at::IntArrayRef dilation, const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(input.is_cuda(), "deform_conv2d: the CUDA kernel got a tensor on ", input.device());
  const c10::cuda::CUDAGuard guard(input.device());
  const Geometry g = check_inputs(input, offset, weight, bias, stride, padding, dilation, mask);
  return forward(input, offset, weight, bias, mask, g, sample_cuda, kCudaBudgetBytes, Layout::kBlocks);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cuda(
    const at::Tensor& grad, const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
    const std::optional<at::Tensor>& mask, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    bool has_bias) {
  TORCH_CHECK(input.is_cuda(), "deform_conv2d_backward: the CUDA kernel got a tensor on ", input.device());
  const c10::cuda::CUDAGuard guard(input.device());
  const Geometry g = check_backward_inputs(grad, input, offset, weight, stride, padding, dilation, mask);
  return backward(grad, input, offset, weight, mask, has_bias, g, sample_cuda, scatter_cuda, kCudaBudgetBytes,
                  Layout::kBlocks);
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CUDA, m) {
  m.impl("deform_conv2d", &deform_conv2d_cuda);
  m.impl("deform_conv2d_backward", &deform_conv2d_backward_cuda);
}

}  // namespace yolactpp::deform_conv
