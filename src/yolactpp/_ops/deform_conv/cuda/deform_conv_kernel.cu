// DCNv2 kernels on CUDA. Forward sampling: one thread per (pixel, tap, channel) of the columns
// image, channels fastest, so neighbouring threads read neighbouring channels of the same corner
// pixels. Backward scatter: one warp per (pixel, offset group, tap), lanes over channels.
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

/// atomicAdd for double also below sm_60 (compare-and-swap), where CUDA has no native one.
__device__ inline void add_to(float* address, float value) { atomicAdd(address, value); }
__device__ inline void add_to(double* address, double value) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 600
  auto* bits = reinterpret_cast<unsigned long long*>(address);
  unsigned long long old = *bits, assumed;
  do {
    assumed = old;
    old = atomicCAS(bits, assumed, __double_as_longlong(value + __longlong_as_double(assumed)));
  } while (assumed != old);
#else
  atomicAdd(address, value);
#endif
}

template <typename A>
__device__ inline A warp_sum(A value) {
  for (int delta = 16; delta > 0; delta /= 2) {
    value += __shfl_down_sync(0xffffffffu, value, delta);
  }
  return value;
}

/// The gradients of one sample, as the CPU scatter (cpu/deform_conv_backward_kernel.cpp) states
/// them: dot products of the columns' gradient with the four corners give the offset and mask
/// gradients; the corners' input gradients are the columns' gradient times their weights.
template <typename T, typename A>
__global__ void scatter_kernel(const T* __restrict__ input, const T* __restrict__ offset, const T* __restrict__ mask,
                               const T* __restrict__ grad_columns, A* __restrict__ grad_input,
                               T* __restrict__ grad_offset, T* __restrict__ grad_mask, ChunkJob job) {
  const Geometry& g = job.g;
  const int64_t C = g.in_channels;
  const int64_t og_channels = C / g.offset_groups;
  const int64_t w_channels = C / g.groups;
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t H = g.height, W = g.width;
  const int lane = threadIdx.x % 32;
  const int64_t total = job.images * job.rows * g.out_w * g.offset_groups * taps;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * blockDim.x / 32;
  for (int64_t s = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32; s < total; s += warps) {
    int64_t t = s;
    const int64_t kx = t % g.kernel_w;
    t /= g.kernel_w;
    const int64_t ky = t % g.kernel_h;
    t /= g.kernel_h;
    const int64_t og = t % g.offset_groups;
    t /= g.offset_groups;
    const int64_t j = t % g.out_w;
    t /= g.out_w;
    const int64_t r = t % job.rows;
    const int64_t n = t / job.rows;
    const int64_t i = job.row0 + r;
    const int64_t image = job.image0 + n;
    const int64_t k = og * taps + ky * g.kernel_w + kx;
    const int64_t* os = job.offset_stride;
    const int64_t* ms = job.mask_stride;
    const int64_t dy_at = image * os[0] + 2 * k * os[1] + i * os[2] + j * os[3];
    const int64_t dx_at = dy_at + os[1];
    const int64_t m_at = image * ms[0] + k * ms[1] + i * ms[2] + j * ms[3];
    const A y = static_cast<A>(i * g.stride_h - g.pad_h + ky * g.dil_h) + static_cast<A>(offset[dy_at]);
    const A x = static_cast<A>(j * g.stride_w - g.pad_w + kx * g.dil_w) + static_cast<A>(offset[dx_at]);
    // Outside (or NaN): zero gradients; y == -1 / x == -1 keep the one-sided offset derivative.
    if (!(y >= A(-1) && y < static_cast<A>(H) && x >= A(-1) && x < static_cast<A>(W))) {
      if (lane == 0) {
        grad_offset[dy_at] = static_cast<T>(A(0));
        grad_offset[dx_at] = static_cast<T>(A(0));
        if (grad_mask != nullptr) grad_mask[m_at] = static_cast<T>(A(0));
      }
      continue;  // the whole warp: s is the same for every lane
    }
    const A m = mask == nullptr ? A(1) : static_cast<A>(mask[m_at]);
    const A yf = floor(y), xf = floor(x);
    const int64_t y0 = static_cast<int64_t>(yf), x0 = static_cast<int64_t>(xf);
    const A ly = y - yf, lx = x - xf, hy = A(1) - ly, hx = A(1) - lx;
    const bool top = y0 >= 0, bottom = y0 + 1 < H, left = x0 >= 0, right = x0 + 1 < W;
    const int64_t at = (image * H * W + y0 * W + x0) * C;
    const A wa = hy * hx * m, wb = hy * lx * m, wc = ly * hx * m, wd = ly * lx * m;
    const T* tap = grad_columns + n * job.image + r * job.row + j * job.column + ky * job.tap_y + kx * job.tap_x;
    A sa = A(0), sb = A(0), sc = A(0), sd = A(0);
    for (int64_t c = og * og_channels + lane; c < (og + 1) * og_channels; c += 32) {
      const int64_t wg = c / w_channels;
      const A grad = static_cast<A>(tap[wg * job.group + (c - wg * w_channels)]);
      if (top && left) {
        sa += grad * static_cast<A>(input[at + c]);
        add_to(grad_input + at + c, wa * grad);
      }
      if (top && right) {
        sb += grad * static_cast<A>(input[at + C + c]);
        add_to(grad_input + at + C + c, wb * grad);
      }
      if (bottom && left) {
        sc += grad * static_cast<A>(input[at + W * C + c]);
        add_to(grad_input + at + W * C + c, wc * grad);
      }
      if (bottom && right) {
        sd += grad * static_cast<A>(input[at + W * C + C + c]);
        add_to(grad_input + at + W * C + C + c, wd * grad);
      }
    }
    sa = warp_sum(sa);
    sb = warp_sum(sb);
    sc = warp_sum(sc);
    sd = warp_sum(sd);
    if (lane == 0) {
      grad_offset[dy_at] = static_cast<T>(m * (hx * (sc - sa) + lx * (sd - sb)));
      grad_offset[dx_at] = static_cast<T>(m * (hy * (sb - sa) + ly * (sd - sc)));
      if (grad_mask != nullptr) grad_mask[m_at] = static_cast<T>(hy * (hx * sa + lx * sb) + ly * (hx * sc + lx * sd));
    }
  }
}

}  // namespace

template <typename T, typename A>
cudaError_t launch_scatter(const T* input, const T* offset, const T* mask, const T* grad_columns, A* grad_input,
                           T* grad_offset, T* grad_mask, const ChunkJob& job, cudaStream_t stream) {
  const int64_t samples = job.images * job.rows * job.g.out_w * job.g.offset_groups * job.g.kernel_h * job.g.kernel_w;
  if (samples == 0) {
    return cudaSuccess;
  }
  constexpr int threads = 256;  // 8 warps, one sample each
  const int64_t wanted = (samples * 32 + threads - 1) / threads;
  const int blocks = static_cast<int>(std::min<int64_t>(wanted, int64_t{1} << 20));
  scatter_kernel<T, A><<<blocks, threads, 0, stream>>>(input, offset, mask, grad_columns, grad_input, grad_offset,
                                                        grad_mask, job);
  return cudaGetLastError();
}

template cudaError_t launch_scatter<float, float>(const float*, const float*, const float*, const float*, float*,
                                                  float*, float*, const ChunkJob&, cudaStream_t);
template cudaError_t launch_scatter<double, double>(const double*, const double*, const double*, const double*,
                                                    double*, double*, double*, const ChunkJob&, cudaStream_t);
template cudaError_t launch_scatter<c10::Half, float>(const c10::Half*, const c10::Half*, const c10::Half*,
                                                      const c10::Half*, float*, c10::Half*, c10::Half*,
                                                      const ChunkJob&, cudaStream_t);
template cudaError_t launch_scatter<c10::BFloat16, float>(const c10::BFloat16*, const c10::BFloat16*,
                                                          const c10::BFloat16*, const c10::BFloat16*, float*,
                                                          c10::BFloat16*, c10::BFloat16*, const ChunkJob&,
                                                          cudaStream_t);

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
