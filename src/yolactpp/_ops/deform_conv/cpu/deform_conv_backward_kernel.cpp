// DCNv2 backward on the CPU: the scatter that turns the columns' gradient into the input, offset
// and mask gradients (the weight and bias gradients come from the plain convolution's backward
// in the shared driver, ../deform_conv.cpp).
//
// For one sample (pixel p, tap k, offset group) with bilinear corners a, b, c, d (top-left,
// top-right, bottom-left, bottom-right; zero outside the map), fractions ly, lx (hy = 1 - ly,
// hx = 1 - lx), mask m and columns' gradient G over the group's channels:
//   grad_input[corner] += m * w_corner * G            (w_a = hy*hx, w_b = hy*lx, w_c = ly*hx, w_d = ly*lx)
//   grad_mask          = sum_c G * (w_a a + w_b b + w_c c + w_d d)
//   grad_dy            = m * sum_c G * (-hx a - lx b + hx c + lx d)
//   grad_dx            = m * sum_c G * (-hy a + hy b - ly c + ly d)
// so one pass over the channels computes the four dot products G.a, G.b, G.c, G.d and scatters.
// A sample outside the map (or at a NaN position) reads zero, so all its gradients are zero. On
// the border y = -1 (x = -1) the sample is zero too but the offset derivative is the one-sided
// derivative towards the map, like at every integer position (torchvision's convention).
//
// Races: different output pixels scatter into the same input pixels. Work is split so that no two
// threads write one address: by image when a chunk has at least as many images as threads, else
// each thread accumulates into its own zeroed copy of the chunk's input gradient, summed after.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../../cpu_isa.h"
#include "../deform_conv.h"
#include "deform_conv_cpu.h"

namespace yolactpp::deform_conv {
namespace {

/// Raw pointers of one chunk's scatter (the input gradient's accumulator is passed separately:
/// each part of the work may have its own). grad_offset / grad_mask share offset's / mask's strides.
template <typename T>
struct ScatterJob {
  const T* input;
  const T* offset;  // contiguous
  const T* mask;    // contiguous; null: all ones
  const T* grad_columns;
  T* grad_offset;
  T* grad_mask;  // null without a mask
  ChunkJob chunk;
};

/// For one corner's channel run: returns sum(G * v) and adds w * G into acc. Written in blocks of
/// 16 independent lanes so that the compiler vectorises the dot product without reassociating.
template <typename T>
C10_ALWAYS_INLINE Acc<T> corner_run(Acc<T>* __restrict acc, const T* __restrict v, const T* __restrict grad,
                                    Acc<T> w, int64_t n) {
  using A = Acc<T>;
  using E = Elem<T>;
  constexpr int kLanes = 16;
  A lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const A gv = E::load(grad[i + l]);
      lanes[l] += gv * E::load(v[i + l]);
      acc[i + l] += w * gv;
    }
  }
  A dot = A(0);
  for (; i < n; ++i) {
    const A gv = E::load(grad[i]);
    dot += gv * E::load(v[i]);
    acc[i] += w * gv;
  }
  for (int l = 0; l < kLanes; ++l) {
    dot += lanes[l];
  }
  return dot;
}

/// Scatters every tap of the chunk's output pixels [begin, end) (flattened over image, row,
/// column), adding input gradients into `grad_input` (image `image_base` at its start).
template <typename T>
C10_ALWAYS_INLINE void scatter_pixels(const ScatterJob<T>& job, Acc<T>* grad_input, int64_t image_base,
                                      int64_t begin, int64_t end) {
  using A = Acc<T>;
  using E = Elem<T>;
  const ChunkJob& chunk = job.chunk;
  const Geometry& g = chunk.g;
  const int64_t C = g.in_channels;
  const int64_t og_channels = C / g.offset_groups;
  const int64_t w_channels = C / g.groups;
  const int64_t taps = g.kernel_h * g.kernel_w;
  const int64_t H = g.height;
  const int64_t W = g.width;
  const int64_t* os = chunk.offset_stride;
  const int64_t* ms = chunk.mask_stride;
  for (int64_t p = begin; p < end; ++p) {
    const int64_t j = p % g.out_w;
    const int64_t r = (p / g.out_w) % chunk.rows;
    const int64_t n = p / (g.out_w * chunk.rows);
    const int64_t i = chunk.row0 + r;
    const int64_t image = chunk.image0 + n;
    const T* in = job.input + image * H * W * C;
    A* gin = grad_input + (image - image_base) * H * W * C;
    const T* pixel = job.grad_columns + n * chunk.image + r * chunk.row + j * chunk.column;
    const int64_t off_at = image * os[0] + i * os[2] + j * os[3];
    const int64_t mask_at = image * ms[0] + i * ms[2] + j * ms[3];
    for (int64_t og = 0; og < g.offset_groups; ++og) {
      for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
        for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
          const int64_t k = og * taps + ky * g.kernel_w + kx;
          const int64_t dy_at = off_at + 2 * k * os[1];
          const int64_t dx_at = dy_at + os[1];
          T* grad_dy = job.grad_offset + dy_at;
          T* grad_dx = job.grad_offset + dx_at;
          T* grad_m = job.grad_mask == nullptr ? nullptr : job.grad_mask + mask_at + k * ms[1];
          const A y = static_cast<A>(i * g.stride_h - g.pad_h + ky * g.dil_h) + E::load(job.offset[dy_at]);
          const A x = static_cast<A>(j * g.stride_w - g.pad_w + kx * g.dil_w) + E::load(job.offset[dx_at]);
          // Outside the map (or NaN): the sample is zero, and so are its gradients. y == -1 (or
          // x == -1) is inside here: the offset gradient is the derivative of the cell above
          // (floor(y), floor(y) + 1), as everywhere else and as torchvision computes it.
          if (!(y >= A(-1) && y < static_cast<A>(H) && x >= A(-1) && x < static_cast<A>(W))) {
            *grad_dy = E::store(A(0));
            *grad_dx = E::store(A(0));
            if (grad_m != nullptr) {
              *grad_m = E::store(A(0));
            }
            continue;
          }
          const A m = job.mask == nullptr ? A(1) : E::load(job.mask[mask_at + k * ms[1]]);
          const A yf = std::floor(y);
          const A xf = std::floor(x);
          const int64_t y0 = static_cast<int64_t>(yf);
          const int64_t x0 = static_cast<int64_t>(xf);
          const A ly = y - yf, lx = x - xf, hy = A(1) - ly, hx = A(1) - lx;
          const bool top = y0 >= 0, bottom = y0 + 1 < H, left = x0 >= 0, right = x0 + 1 < W;
          const int64_t at = (y0 * W + x0) * C;  // top-left corner, valid when top && left
          const A wa = hy * hx * m, wb = hy * lx * m, wc = ly * hx * m, wd = ly * lx * m;
          const T* tap = pixel + ky * chunk.tap_y + kx * chunk.tap_x;
          A sa = A(0), sb = A(0), sc = A(0), sd = A(0);
          // This offset group's channels, in runs that end where a weight group ends.
          for (int64_t c0 = og * og_channels, c_end = c0 + og_channels; c0 < c_end;) {
            const int64_t wg = c0 / w_channels;
            const int64_t c1 = std::min(c_end, (wg + 1) * w_channels);
            const T* grad = tap + wg * chunk.group + (c0 - wg * w_channels);
            const int64_t len = c1 - c0;
            if (top && left) sa += corner_run<T>(gin + at + c0, in + at + c0, grad, wa, len);
            if (top && right) sb += corner_run<T>(gin + at + C + c0, in + at + C + c0, grad, wb, len);
            if (bottom && left) sc += corner_run<T>(gin + at + W * C + c0, in + at + W * C + c0, grad, wc, len);
            if (bottom && right) {
              sd += corner_run<T>(gin + at + W * C + C + c0, in + at + W * C + C + c0, grad, wd, len);
            }
            c0 = c1;
          }
          *grad_dy = E::store(m * (hx * (sc - sa) + lx * (sd - sb)));
          *grad_dx = E::store(m * (hy * (sb - sa) + ly * (sd - sc)));
          if (grad_m != nullptr) {
            *grad_m = E::store(hy * (hx * sa + lx * sb) + ly * (hx * sc + lx * sd));
          }
        }
      }
    }
  }
}

template <typename T>
using ScatterFn = void (*)(const ScatterJob<T>&, Acc<T>*, int64_t, int64_t, int64_t);

template <typename T>
void scatter_pixels_default(const ScatterJob<T>& job, Acc<T>* grad_input, int64_t image_base, int64_t begin,
                            int64_t end) {
  scatter_pixels<T>(job, grad_input, image_base, begin, end);
}

#if YOLACTPP_X86_DISPATCH
template <typename T>
YOLACTPP_TARGET_AVX2 void scatter_pixels_avx2(const ScatterJob<T>& job, Acc<T>* grad_input, int64_t image_base,
                                              int64_t begin, int64_t end) {
  scatter_pixels<T>(job, grad_input, image_base, begin, end);
}

template <typename T>
YOLACTPP_TARGET_AVX512 void scatter_pixels_avx512(const ScatterJob<T>& job, Acc<T>* grad_input, int64_t image_base,
                                                  int64_t begin, int64_t end) {
  scatter_pixels<T>(job, grad_input, image_base, begin, end);
}
#endif

template <typename T>
ScatterFn<T> pick_scatter() {
#if YOLACTPP_X86_DISPATCH
  if (cpu_isa_level() >= 2) return &scatter_pixels_avx512<T>;
  if (cpu_isa_level() == 1) return &scatter_pixels_avx2<T>;
#endif
  return &scatter_pixels_default<T>;
}

void scatter_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                 const at::Tensor& grad_columns, at::Tensor& grad_input, at::Tensor& grad_offset,
                 at::Tensor& grad_mask, const ChunkJob& chunk) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "yolactpp::deform_conv2d_backward",
                                  [&] {
    using A = Acc<scalar_t>;
    ScatterJob<scalar_t> job{};
    job.input = input.const_data_ptr<scalar_t>();
    job.offset = offset.const_data_ptr<scalar_t>();
    job.mask = mask.defined() ? mask.const_data_ptr<scalar_t>() : nullptr;
    job.grad_columns = grad_columns.const_data_ptr<scalar_t>();
    job.grad_offset = grad_offset.mutable_data_ptr<scalar_t>();
    job.grad_mask = mask.defined() ? grad_mask.mutable_data_ptr<scalar_t>() : nullptr;
    job.chunk = chunk;
    const ScatterFn<scalar_t> run = pick_scatter<scalar_t>();
    const Geometry& g = chunk.g;
    const int64_t image_pixels = chunk.rows * g.out_w;
    const int64_t pixels = chunk.images * image_pixels;
    const int64_t image_elements = g.height * g.width * g.in_channels;
    A* chunk_grad = grad_input.mutable_data_ptr<A>() + chunk.image0 * image_elements;
    // Parts that write disjoint memory: whole images, or one private accumulator per part.
    constexpr int64_t kMinPixels = 64;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), pixels / kMinPixels));
    if (parts == 1 || chunk.images >= parts) {
      at::parallel_for(0, chunk.images, 1, [&](int64_t begin, int64_t end) {
        run(job, chunk_grad, chunk.image0, begin * image_pixels, end * image_pixels);
      });
      return;
    }
    const at::Tensor extra = at::zeros({parts - 1, chunk.images * image_elements}, grad_input.options());
    A* extra_data = extra.mutable_data_ptr<A>();
    at::parallel_for(0, parts, 1, [&](int64_t begin, int64_t end) {
      for (int64_t part = begin; part < end; ++part) {
        A* target = part == 0 ? chunk_grad : extra_data + (part - 1) * chunk.images * image_elements;
        run(job, target, chunk.image0, part * pixels / parts, (part + 1) * pixels / parts);
      }
    });
    grad_input.narrow(0, chunk.image0, chunk.images)
        .permute({0, 2, 3, 1})
        .reshape({-1})
        .add_(extra.sum(0));
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> deform_conv2d_backward_cpu(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& mask,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    bool has_bias) {
  TORCH_CHECK(input.device().is_cpu(), "deform_conv2d_backward: the CPU kernel got a tensor on ", input.device());
  const Geometry g = check_backward_inputs(grad, input, offset, weight, stride, padding, dilation, mask);
  return backward(grad, input, offset, weight, mask, has_bias, g, sample_cpu, scatter_cpu, kCpuBudgetBytes,
                  cpu_layout(input, weight, g));
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CPU, m) {
  m.impl("deform_conv2d_backward", &deform_conv2d_backward_cpu);
}

}  // namespace yolactpp::deform_conv
