// DCNv2 forward: input checks, the chunked sample-then-convolve driver and the CPU sampler.
//
// Semantics follow torchvision.ops.deform_conv2d: for output pixel (i, j), tap (ky, kx) of offset
// group g reads (dy, dx) from offset channels g*2K + 2k and g*2K + 2k + 1 (k = ky*kw + kx), samples
// the input bilinearly at (i*sh - ph + ky*dh + dy, j*sw - pw + kx*dw + dx) (zero unless
// -1 < y < H and -1 < x < W; corners outside the map count as zero) and scales the sample by mask
// channel g*K + k.
#include "deform_conv.h"

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

#include "../cpu_isa.h"

#if YOLACTPP_X86_DISPATCH
#include <immintrin.h>
#endif

namespace yolactpp::deform_conv {

Geometry check_inputs(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask) {
  TORCH_CHECK(input.dim() == 4, "deform_conv2d: input must be 4-D [N, C, H, W], got ", input.sizes());
  TORCH_CHECK(offset.dim() == 4, "deform_conv2d: offset must be 4-D [N, 2*offset_groups*kh*kw, H_out, W_out], got ",
              offset.sizes());
  TORCH_CHECK(weight.dim() == 4, "deform_conv2d: weight must be 4-D [C_out, C_in/groups, kh, kw], got ",
              weight.sizes());
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && dilation.size() == 2,
              "deform_conv2d: stride, padding and dilation must have two values each");
  TORCH_CHECK(stride[0] > 0 && stride[1] > 0, "deform_conv2d: stride must be positive, got ", stride);
  TORCH_CHECK(dilation[0] > 0 && dilation[1] > 0, "deform_conv2d: dilation must be positive, got ", dilation);
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0, "deform_conv2d: padding must be non-negative, got ", padding);

  const auto dtype = input.scalar_type();
  TORCH_CHECK(at::isFloatingType(dtype), "deform_conv2d: input must be a floating tensor, got ", dtype);
  auto same = [&](const at::Tensor& t, const char* name) {
    TORCH_CHECK(t.scalar_type() == dtype, "deform_conv2d: ", name, " has dtype ", t.scalar_type(),
                " but input has ", dtype);
    TORCH_CHECK(t.device() == input.device(), "deform_conv2d: ", name, " is on ", t.device(), " but input is on ",
                input.device());
  };
  same(offset, "offset");
  same(weight, "weight");

  Geometry g{};
  g.batch = input.size(0);
  g.in_channels = input.size(1);
  g.height = input.size(2);
  g.width = input.size(3);
  g.out_channels = weight.size(0);
  g.kernel_h = weight.size(2);
  g.kernel_w = weight.size(3);
  g.stride_h = stride[0];
  g.stride_w = stride[1];
  g.pad_h = padding[0];
  g.pad_w = padding[1];
  g.dil_h = dilation[0];
  g.dil_w = dilation[1];
  TORCH_CHECK(g.kernel_h > 0 && g.kernel_w > 0, "deform_conv2d: empty kernel ", weight.sizes());
  TORCH_CHECK(weight.size(1) > 0 && g.in_channels % weight.size(1) == 0,
              "deform_conv2d: input channels (", g.in_channels, ") must be a multiple of weight.shape[1] (",
              weight.size(1), ")");
  g.groups = g.in_channels / weight.size(1);
  TORCH_CHECK(g.out_channels % g.groups == 0, "deform_conv2d: output channels (", g.out_channels,
              ") must be divisible by groups (", g.groups, ")");

  const int64_t taps = g.kernel_h * g.kernel_w;
  TORCH_CHECK(offset.size(1) > 0 && offset.size(1) % (2 * taps) == 0,
              "deform_conv2d: offset.shape[1] (", offset.size(1), ") must be a positive multiple of 2*kh*kw = ",
              2 * taps);
  g.offset_groups = offset.size(1) / (2 * taps);
  TORCH_CHECK(g.in_channels % g.offset_groups == 0, "deform_conv2d: input channels (", g.in_channels,
              ") must be divisible by offset groups (", g.offset_groups, ")");

  const int64_t span_h = g.dil_h * (g.kernel_h - 1) + 1;
  const int64_t span_w = g.dil_w * (g.kernel_w - 1) + 1;
  g.out_h = (g.height + 2 * g.pad_h - span_h) / g.stride_h + 1;
  g.out_w = (g.width + 2 * g.pad_w - span_w) / g.stride_w + 1;
  TORCH_CHECK(g.height + 2 * g.pad_h >= span_h && g.width + 2 * g.pad_w >= span_w && g.out_h > 0 && g.out_w > 0,
              "deform_conv2d: the output would be empty: input ", input.sizes(), ", kernel ", g.kernel_h, "x",
              g.kernel_w, ", padding ", padding, ", dilation ", dilation);
  TORCH_CHECK(offset.size(0) == g.batch && offset.size(2) == g.out_h && offset.size(3) == g.out_w,
              "deform_conv2d: offset must be [", g.batch, ", ", offset.size(1), ", ", g.out_h, ", ", g.out_w,
              "] for this input and kernel, got ", offset.sizes());
  if (mask.has_value()) {
    const at::Tensor& m = *mask;
    same(m, "mask");
    TORCH_CHECK(m.dim() == 4 && m.size(0) == g.batch && m.size(1) == g.offset_groups * taps &&
                    m.size(2) == g.out_h && m.size(3) == g.out_w,
                "deform_conv2d: mask must be [", g.batch, ", ", g.offset_groups * taps, ", ", g.out_h, ", ", g.out_w,
                "] (offset_groups*kh*kw channels), got ", m.sizes());
  }
  if (bias.has_value()) {
    same(*bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == g.out_channels, "deform_conv2d: bias must be [",
                g.out_channels, "], got ", bias->sizes());
  }
  return g;
}

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
    int64_t budget_bytes,
    Layout layout) {
  const Geometry g = check_inputs(input, offset, weight, bias, stride, padding, dilation, mask);
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const auto out_format =
      input.suggest_memory_format() == channels_last ? channels_last : at::MemoryFormat::Contiguous;
  if (g.batch == 0) {
    return at::empty({0, g.out_channels, g.out_h, g.out_w}, input.options().memory_format(out_format));
  }
  const at::Tensor x = input.contiguous(channels_last);
  const at::Tensor m = mask.has_value() ? *mask : at::Tensor();
  const bool blocks = layout == Layout::kBlocks;
  const int64_t kh = g.kernel_h, kw = g.kernel_w, taps = kh * kw, C = g.in_channels;
  const int64_t group_channels = C / g.groups;

  // Columns for one output row of one image; chunk over images, or over rows of a huge image.
  const int64_t row_elements = taps * g.out_w * C;
  const int64_t row_bytes = row_elements * x.element_size();
  int64_t images = 1;
  int64_t rows = g.out_h;
  if (row_bytes * g.out_h <= budget_bytes) {
    images = std::min(g.batch, std::max<int64_t>(1, budget_bytes / (row_bytes * g.out_h)));
  } else {
    rows = std::max<int64_t>(1, budget_bytes / row_bytes);
  }
  const auto cl = x.options().memory_format(channels_last);
  at::Tensor columns = blocks ? at::empty({images, C, rows * kh, g.out_w * kw}, cl)
                              : at::empty({images, taps * C, rows, g.out_w}, cl);
  // kTapsAsChannels: [C_out, kh, kw, C_in/groups] flattened matches the column channel order.
  const at::Tensor conv_weight =
      blocks ? weight : weight.permute({0, 2, 3, 1}).reshape({g.out_channels, taps * group_channels, 1, 1});

  ChunkJob job{};
  for (int d = 0; d < 4; ++d) {
    job.offset_stride[d] = offset.stride(d);
    job.mask_stride[d] = m.defined() ? m.stride(d) : 0;
  }
  job.g = g;
  job.image = rows * row_elements;
  job.row = row_elements;
  job.column = blocks ? kw * C : taps * C;
  job.tap_y = blocks ? g.out_w * kw * C : kw * group_channels;
  job.tap_x = blocks ? C : group_channels;
  job.group = blocks ? group_channels : taps * group_channels;

  const bool one_chunk = images >= g.batch && rows >= g.out_h;
  at::Tensor out;
  if (!one_chunk) {
    out = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, cl);
  }
  for (int64_t n0 = 0; n0 < g.batch; n0 += images) {
    const int64_t nb = std::min(images, g.batch - n0);
    for (int64_t r0 = 0; r0 < g.out_h; r0 += rows) {
      const int64_t rb = std::min(rows, g.out_h - r0);
      at::Tensor cols = columns.narrow(0, 0, nb).narrow(2, 0, blocks ? rb * kh : rb);
      job.image0 = n0;
      job.row0 = r0;
      job.rows = rb;
      job.images = nb;
      sampler(x, offset, m, cols, job);
      at::Tensor y = blocks ? at::convolution(cols, conv_weight, bias, {kh, kw}, {0, 0}, {1, 1}, false, {0, 0}, g.groups)
                            : at::convolution(cols, conv_weight, bias, {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, g.groups);
      if (one_chunk) {
        out = y;
      } else {
        out.narrow(0, n0, nb).narrow(2, r0, rb).copy_(y);
      }
    }
  }
  return out.contiguous(out_format);
}

namespace {

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

/// Columns of one chunk on the CPU stay within this many bytes; the convolution reads them next.
constexpr int64_t kCpuBudgetBytes = int64_t{32} << 20;

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
  // Measured on the YOLACT++ layer shapes: for bfloat16/half, oneDNN's 1x1 convolution (a plain
  // GEMM) beats the strided one unless permuting the weight costs more than that saves (a weight
  // comparable to the columns, as in C5); for float32/float64 the strided convolution wins.
  const Geometry g = check_inputs(input, offset, weight, bias, stride, padding, dilation, mask);
  const bool reduced = input.scalar_type() == at::kBFloat16 || input.scalar_type() == at::kHalf;
  const int64_t column_elements = g.batch * g.out_h * g.out_w * g.kernel_h * g.kernel_w * g.in_channels;
  const bool small_weight = 4 * weight.numel() <= column_elements;
  const bool taps = reduced && (small_weight || weight.is_contiguous(at::MemoryFormat::ChannelsLast));
  return forward(input, offset, weight, bias, stride, padding, dilation, mask, sample_cpu, kCpuBudgetBytes,
                 taps ? Layout::kTapsAsChannels : Layout::kBlocks);
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CPU, m) {
  m.impl("deform_conv2d", &deform_conv2d_cpu);
}

}  // namespace yolactpp::deform_conv
