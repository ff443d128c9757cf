// deform_conv2d under torch.autocast (CPU and CUDA): every floating argument is cast to the
// autocast dtype and the op runs once in that dtype, so the result has that dtype whatever the
// batch size or chunking. Without this kernel a float32 model under bfloat16 autocast fails (the
// convolution before the op yields bfloat16, the offsets do not), and the convolution inside the
// driver would autocast on its own. torchvision computes in float32 here; the native kernels have
// bfloat16/float16 paths on both devices, so the low-precision dtype is the faster choice.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

namespace yolactpp::deform_conv {
namespace {

template <c10::DeviceType kDevice>
at::Tensor deform_conv2d_autocast(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation,
                                  const std::optional<at::Tensor>& mask) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const at::ScalarType dtype = at::autocast::get_autocast_dtype(kDevice);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("yolactpp::deform_conv2d", "")
                             .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                               const std::optional<at::Tensor>&, at::IntArrayRef, at::IntArrayRef,
                                               at::IntArrayRef, const std::optional<at::Tensor>&)>();
  using at::autocast::cached_cast;
  return op.call(cached_cast(dtype, input, kDevice), cached_cast(dtype, offset, kDevice),
                 cached_cast(dtype, weight, kDevice), cached_cast(dtype, bias, kDevice), stride, padding, dilation,
                 cached_cast(dtype, mask, kDevice));
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, AutocastCPU, m) {
  m.impl("deform_conv2d", &deform_conv2d_autocast<c10::DeviceType::CPU>);
}

TORCH_LIBRARY_IMPL(yolactpp, AutocastCUDA, m) {
  m.impl("deform_conv2d", &deform_conv2d_autocast<c10::DeviceType::CUDA>);
}

}  // namespace yolactpp::deform_conv
