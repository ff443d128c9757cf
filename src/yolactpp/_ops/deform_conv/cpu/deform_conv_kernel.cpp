// DCNv2 forward on the CPU: the vectorised bilinear sampler (AVX-512 / AVX2 / baseline variants
// picked at run time) plugged into the shared sample-then-convolve driver (../deform_conv.cpp).
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/bit_cast.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../../cpu_isa.h"
#include "../deform_conv.h"
#include "deform_conv_cpu.h"

#if YOLACTPP_X86_DISPATCH
#include <immintrin.h>
#endif

namespace yolactpp::deform_conv {

namespace {


/// dst[i] = wa*a[i] + wb*b[i] + wc*c[i] + wd*d[i] for one sample's channels: the four bilinear
/// corners are channel vectors sharing one set of (mask-scaled) weights.
template <typename T>
using BlendFn = void (*)(T*, const T*, const T*, const T*, const T*, Acc<T>, Acc<T>, Acc<T>, Acc<T>, int64_t);

template <typename T, bool kFma>
C10_ALWAYS_INLINE void blend(
    T* __restrict dst,
    const T* __restrict a,
    const T* __restrict b,
    const T* __restrict c,
    const T* __restrict d,
    Acc<T> wa,
    Acc<T> wb,
    Acc<T> wc,
    Acc<T> wd,
    int64_t n) {
  using E = Elem<T>;
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (kFma) {  // only instantiated where the target has FMA instructions
      dst[i] = E::store(__builtin_fma(wd, E::load(d[i]),
                                      __builtin_fma(wc, E::load(c[i]), __builtin_fma(wb, E::load(b[i]), wa * E::load(a[i])))));
    } else {
      dst[i] = E::store(wa * E::load(a[i]) + wb * E::load(b[i]) + wc * E::load(c[i]) + wd * E::load(d[i]));
    }
  }
}

template <>
C10_ALWAYS_INLINE void blend<float, true>(
    float* __restrict dst,
    const float* __restrict a,
    const float* __restrict b,
    const float* __restrict c,
    const float* __restrict d,
    float wa,
    float wb,
    float wc,
    float wd,
    int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    dst[i] = __builtin_fmaf(wd, d[i], __builtin_fmaf(wc, c[i], __builtin_fmaf(wb, b[i], wa * a[i])));
  }
}

#if YOLACTPP_X86_DISPATCH
#define YOLACTPP_AVX512BF16 "avx512f,avx512bw,avx512vl,avx512bf16,fma"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positive in _mm512_undefined_*

/// 16 bfloat16 values widened to float (exact: a shift).
__attribute__((target(YOLACTPP_AVX512BF16), always_inline)) inline __m512 load_bf16x16(const c10::BFloat16* p) {
  const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
}

/// bfloat16 blend with AVX512-BF16's rounding conversion (one instruction instead of six).
__attribute__((target(YOLACTPP_AVX512BF16))) void blend_bf16_avx512bf16(
    c10::BFloat16* dst,
    const c10::BFloat16* a,
    const c10::BFloat16* b,
    const c10::BFloat16* c,
    const c10::BFloat16* d,
    float wa,
    float wb,
    float wc,
    float wd,
    int64_t n) {
  const __m512 va = _mm512_set1_ps(wa), vb = _mm512_set1_ps(wb), vc = _mm512_set1_ps(wc), vd = _mm512_set1_ps(wd);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 v = _mm512_mul_ps(va, load_bf16x16(a + i));
    v = _mm512_fmadd_ps(vb, load_bf16x16(b + i), v);
    v = _mm512_fmadd_ps(vc, load_bf16x16(c + i), v);
    v = _mm512_fmadd_ps(vd, load_bf16x16(d + i), v);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  }
  for (; i < n; ++i) {
    using E = Elem<c10::BFloat16>;
    dst[i] = E::store(wa * E::load(a[i]) + wb * E::load(b[i]) + wc * E::load(c[i]) + wd * E::load(d[i]));
  }
}
#pragma GCC diagnostic pop
#endif

/// What the sampler reads and writes: raw pointers plus the chunk description.
template <typename T>
struct SampleJob {
  const T* input;  // channels_last [N, H, W, C]
  const T* offset;
  const T* mask;     // null: all ones
  T* columns;        // see ChunkJob
  const T* zeros;    // C zeros, read for corners outside the map
  BlendFn<T> blend;  // null: the inline blend
  ChunkJob chunk;
};

/// Samples every tap of output pixels [begin, end) (flattened over image, row, column of the chunk).
template <typename T, bool kFma>
C10_ALWAYS_INLINE void sample_pixels(const SampleJob<T>& job, int64_t begin, int64_t end) {
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
    T* pixel = job.columns + n * chunk.image + r * chunk.row + j * chunk.column;
    const T* off = job.offset + image * os[0] + i * os[2] + j * os[3];
    const T* msk = job.mask == nullptr ? nullptr : job.mask + image * ms[0] + i * ms[2] + j * ms[3];
    for (int64_t og = 0; og < g.offset_groups; ++og) {
      for (int64_t ky = 0; ky < g.kernel_h; ++ky) {
        for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
          const int64_t k = og * taps + ky * g.kernel_w + kx;
          const A dy = E::load(off[2 * k * os[1]]);
          const A dx = E::load(off[(2 * k + 1) * os[1]]);
          const A y = static_cast<A>(i * g.stride_h - g.pad_h + ky * g.dil_h) + dy;
          const A x = static_cast<A>(j * g.stride_w - g.pad_w + kx * g.dil_w) + dx;
          // Outside the map (or NaN): all four corners read zeros with weight zero.
          const bool inside = y > A(-1) && y < static_cast<A>(H) && x > A(-1) && x < static_cast<A>(W);
          const A m = !inside ? A(0) : msk == nullptr ? A(1) : E::load(msk[k * ms[1]]);
          const A yf = inside ? std::floor(y) : A(0);
          const A xf = inside ? std::floor(x) : A(0);
          const int64_t y0 = static_cast<int64_t>(yf);
          const int64_t x0 = static_cast<int64_t>(xf);
          const A ly = inside ? y - yf : A(0);
          const A lx = inside ? x - xf : A(0);
          const A hy = A(1) - ly;
          const A hx = A(1) - lx;
          const bool top = inside && y0 >= 0;
          const bool bottom = inside && y0 + 1 < H;
          const bool left = inside && x0 >= 0;
          const bool right = inside && x0 + 1 < W;
          const int64_t at = (y0 * W + x0) * C;  // top-left corner, valid when top && left
          const A wa = hy * hx * m, wb = hy * lx * m, wc = ly * hx * m, wd = ly * lx * m;
          T* tap = pixel + ky * chunk.tap_y + kx * chunk.tap_x;
          // This offset group's channels, in runs that end where a weight group ends.
          for (int64_t c0 = og * og_channels, c_end = c0 + og_channels; c0 < c_end;) {
            const int64_t wg = c0 / w_channels;
            const int64_t c1 = std::min(c_end, (wg + 1) * w_channels);
            T* dst = tap + wg * chunk.group + (c0 - wg * w_channels);
            const T* tl = top && left ? in + at + c0 : job.zeros;
            const T* tr = top && right ? in + at + C + c0 : job.zeros;
            const T* bl = bottom && left ? in + at + W * C + c0 : job.zeros;
            const T* br = bottom && right ? in + at + W * C + C + c0 : job.zeros;
            if (job.blend != nullptr) {
              job.blend(dst, tl, tr, bl, br, wa, wb, wc, wd, c1 - c0);
            } else {
              blend<T, kFma>(dst, tl, tr, bl, br, wa, wb, wc, wd, c1 - c0);
            }
            c0 = c1;
          }
        }
      }
    }
  }
}

template <typename T>
using SampleFn = void (*)(const SampleJob<T>&, int64_t, int64_t);

template <typename T>
void sample_pixels_default(const SampleJob<T>& job, int64_t begin, int64_t end) {
  sample_pixels<T, false>(job, begin, end);
}

#if YOLACTPP_X86_DISPATCH
template <typename T>
YOLACTPP_TARGET_AVX2 void sample_pixels_avx2(const SampleJob<T>& job, int64_t begin, int64_t end) {
  sample_pixels<T, true>(job, begin, end);
}

template <typename T>
YOLACTPP_TARGET_AVX512 void sample_pixels_avx512(const SampleJob<T>& job, int64_t begin, int64_t end) {
  sample_pixels<T, true>(job, begin, end);
}
#endif

template <typename T>
SampleFn<T> pick_sampler() {
#if YOLACTPP_X86_DISPATCH
  if (cpu_isa_level() >= 2) return &sample_pixels_avx512<T>;
  if (cpu_isa_level() == 1) return &sample_pixels_avx2<T>;
#endif
  return &sample_pixels_default<T>;
}

template <typename T>
BlendFn<T> pick_blend() {
#if YOLACTPP_X86_DISPATCH
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    if (cpu_isa_level() >= 3) return &blend_bf16_avx512bf16;
  }
#endif
  return nullptr;
}

}  // namespace

void sample_cpu(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& mask,
    at::Tensor& columns,
    const ChunkJob& chunk) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(), "yolactpp::deform_conv2d", [&] {
    const std::vector<scalar_t> zeros(static_cast<size_t>(chunk.g.in_channels), scalar_t(0));
    SampleJob<scalar_t> job{};
    job.input = input.const_data_ptr<scalar_t>();
    job.offset = offset.const_data_ptr<scalar_t>();
    job.mask = mask.defined() ? mask.const_data_ptr<scalar_t>() : nullptr;
    job.columns = columns.mutable_data_ptr<scalar_t>();
    job.zeros = zeros.data();
    job.blend = pick_blend<scalar_t>();
    job.chunk = chunk;
    const SampleFn<scalar_t> run = pick_sampler<scalar_t>();
    const int64_t pixels = chunk.images * chunk.rows * chunk.g.out_w;
    at::parallel_for(0, pixels, 16, [&](int64_t begin, int64_t end) { run(job, begin, end); });
  });
}

Layout cpu_layout(const at::Tensor& input, const at::Tensor& weight, const Geometry& g) {
  // Measured on the YOLACT++ layer shapes: for bfloat16/half, oneDNN's 1x1 convolution (a plain
  // GEMM) beats the strided one unless permuting the weight costs more than that saves (a weight
  // comparable to the columns, as in C5); for float32/float64 the strided convolution wins.
  const bool reduced = input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf;
  const int64_t column_elements = g.batch * g.out_h * g.out_w * g.kernel_h * g.kernel_w * g.in_channels;
  const bool small_weight = 4 * weight.numel() <= column_elements;
  const bool taps = reduced && (small_weight || weight.is_contiguous(at::MemoryFormat::ChannelsLast));
  return taps ? Layout::kTapsAsChannels : Layout::kBlocks;
}

namespace {

at::Tensor deform_conv2d_cpu(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(input.device().is_cpu(), "deform_conv2d: the CPU kernel got a tensor on ", input.device());
  const Geometry g = check_inputs(input, offset, weight, bias, stride, padding, dilation, mask);
  return forward(input, offset, weight, bias, mask, g, sample_cpu, kCpuBudgetBytes, cpu_layout(input, weight, g));
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CPU, m) {
  m.impl("deform_conv2d", &deform_conv2d_cpu);
}

}  // namespace yolactpp::deform_conv
