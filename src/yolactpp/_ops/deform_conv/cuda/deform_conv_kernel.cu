// DCNv2 sampling kernel on CUDA: one thread per (pixel, tap, channel) of the columns image,
// channels fastest, so neighbouring threads read neighbouring channels of the same corner pixels.
// Only light headers here: this file is compiled once per GPU architecture.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>

#include "deform_conv_cuda.h"

namespace yolactpp::deform_conv {
namespace {

template <typename T>
struct Acc {
  using type = float;  // half and bfloat16 interpolate in float
};
template <>
struct Acc<double> {
  using type = double;
};

template <typename T>
__global__ void sample_kernel(const T* __restrict__ input, const T* __restrict__ offset, const T* __restrict__ mask,
                              T* __restrict__ columns, ChunkJob job) {
  using A = typename Acc<T>::type;
  const Geometry& g = job.g;
  const int64_t C = g.in_channels;
  const int64_t group_channels = C / g.offset_groups;
  const int64_t weight_channels = C / g.groups;
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t total = job.images * job.rows * g.out_w * taps * C;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t c = e % C;
    int64_t t = e / C;
    const int64_t kx = t % g.kernel_w;
    t /= g.kernel_w;
    const int64_t ky = t % g.kernel_h;
    t /= g.kernel_h;
    const int64_t j = t % g.out_w;
    t /= g.out_w;
    const int64_t r = t % job.rows;
    const int64_t n = t / job.rows;
    const int64_t i = job.row0 + r;
    const int64_t image = job.image0 + n;
    const int64_t k = (c / group_channels) * taps + ky * g.kernel_w + kx;
    const int64_t wg = c / weight_channels;

    const int64_t pixel = image * job.offset_stride[0] + i * job.offset_stride[2] + j * job.offset_stride[3];
    const A dy = static_cast<A>(offset[pixel + 2 * k * job.offset_stride[1]]);
    const A dx = static_cast<A>(offset[pixel + (2 * k + 1) * job.offset_stride[1]]);
    const A y = static_cast<A>(i * g.stride_h - g.pad_h + ky * g.dil_h) + dy;
    const A x = static_cast<A>(j * g.stride_w - g.pad_w + kx * g.dil_w) + dx;
    A value = A(0);
    if (y > A(-1) && y < static_cast<A>(g.height) && x > A(-1) && x < static_cast<A>(g.width)) {
      const A m = mask == nullptr ? A(1)
                                  : static_cast<A>(mask[image * job.mask_stride[0] + k * job.mask_stride[1] +
                                                        i * job.mask_stride[2] + j * job.mask_stride[3]]);
      const A yf = floor(y);
      const A xf = floor(x);
      const int64_t y0 = static_cast<int64_t>(yf);
      const int64_t x0 = static_cast<int64_t>(xf);
      const A ly = y - yf;
      const A lx = x - xf;
      const T* in = input + image * g.height * g.width * C + c;
      auto corner = [&](int64_t yy, int64_t xx) -> A {
        const bool inside = yy >= 0 && yy < g.height && xx >= 0 && xx < g.width;
        return inside ? static_cast<A>(in[(yy * g.width + xx) * C]) : A(0);
      };
      value = m * ((A(1) - ly) * (A(1) - lx) * corner(y0, x0) + (A(1) - ly) * lx * corner(y0, x0 + 1) +
                   ly * (A(1) - lx) * corner(y0 + 1, x0) + ly * lx * corner(y0 + 1, x0 + 1));
    }
    columns[n * job.image + r * job.row + j * job.column + ky * job.tap_y + kx * job.tap_x + wg * job.group +
            (c - wg * weight_channels)] = static_cast<T>(value);
  }
}

}  // namespace

template <typename T>
cudaError_t launch_sample(const T* input, const T* offset, const T* mask, T* columns, const ChunkJob& job,
                          cudaStream_t stream) {
  const int64_t total = job.images * job.rows * job.g.out_w * job.g.kernel_h * job.g.kernel_w * job.g.in_channels;
  if (total == 0) {
    return cudaSuccess;
  }
  constexpr int threads = 256;
  const int64_t wanted = (total + threads - 1) / threads;
  const int blocks = static_cast<int>(std::min<int64_t>(wanted, int64_t{1} << 20));
  sample_kernel<T><<<blocks, threads, 0, stream>>>(input, offset, mask, columns, job);
  return cudaGetLastError();
}

template cudaError_t launch_sample<float>(const float*, const float*, const float*, float*, const ChunkJob&,
                                          cudaStream_t);
template cudaError_t launch_sample<double>(const double*, const double*, const double*, double*, const ChunkJob&,
                                           cudaStream_t);
template cudaError_t launch_sample<c10::Half>(const c10::Half*, const c10::Half*, const c10::Half*, c10::Half*,
                                              const ChunkJob&, cudaStream_t);
template cudaError_t launch_sample<c10::BFloat16>(const c10::BFloat16*, const c10::BFloat16*, const c10::BFloat16*,
                                                  c10::BFloat16*, const ChunkJob&, cudaStream_t);

}  // namespace yolactpp::deform_conv
