// DCNv2, shared by every backend: the operator schemas, the input checks and the chunked
// sample-then-convolve drivers of the forward and the backward. The backends (cpu/, cuda/) only
// bring a sampler (forward) and a scatter (backward: columns' gradient -> input, offset, mask).
//
// Semantics follow torchvision.ops.deform_conv2d: for output pixel (i, j), tap (ky, kx) of offset
// group g reads (dy, dx) from offset channels g*2K + 2k and g*2K + 2k + 1 (k = ky*kw + kx), samples
// the input bilinearly at (i*sh - ph + ky*dh + dy, j*sw - pw + kx*dw + dx) (zero unless
// -1 < y < H and -1 < x < W; corners outside the map count as zero) and scales the sample by mask
// channel g*K + k.
#include "deform_conv.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <tuple>

namespace yolactpp::deform_conv {

TORCH_LIBRARY_FRAGMENT(yolactpp, m) {
  m.def(
      "deform_conv2d(Tensor input, Tensor offset, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, Tensor? mask) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // Gradients of deform_conv2d for input, offset, weight, bias and mask; the op's autograd formula
  // (registered from Python, yolactpp/ops/_autograd.py). grad_bias is empty without a bias and
  // grad_mask without a mask.
  m.def(
      "deform_conv2d_backward(Tensor grad, Tensor input, Tensor offset, Tensor weight, Tensor? mask, "
      "int[2] stride, int[2] padding, int[2] dilation, bool has_bias) "
      "-> (Tensor grad_input, Tensor grad_offset, Tensor grad_weight, Tensor grad_bias, Tensor grad_mask)",
      {at::Tag::pt2_compliant_tag});
}

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
  // Zero channels would make the group counts below divide by zero (SIGFPE, not an exception).
  TORCH_CHECK(g.in_channels > 0, "deform_conv2d: input has no channels: ", input.sizes());
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

namespace {

/// The GEMM as a plain convolution. float32 on CUDA stays IEEE float32 (as torchvision's DCN)
/// unless the user allowed TF32 for matmuls: at::convolution would follow cuDNN's TF32 switch,
/// which is on by default, and miss the float32 parity bound several times over.
at::Tensor convolve(const at::Tensor& columns, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                    at::IntArrayRef stride, int64_t groups) {
  auto& context = at::globalContext();
  if (columns.is_cuda() && columns.scalar_type() == at::kFloat && !context.allowTF32CuBLAS() &&
      context.userEnabledCuDNN() && at::detail::getCUDAHooks().compiledWithCuDNN()) {
    at::Tensor y = at::cudnn_convolution(columns, weight, {0, 0}, stride, {1, 1}, groups, context.benchmarkCuDNN(),
                                         context.deterministicCuDNN(), /*allow_tf32=*/false);
    if (bias.has_value()) {
      y.add_(bias->view({1, -1, 1, 1}));
    }
    return y;
  }
  return at::convolution(columns, weight, bias, stride, {0, 0}, {1, 1}, false, {0, 0}, groups);
}

/// How the columns are chunked and laid out for one call, shared by the forward and the backward.
struct Plan {
  int64_t images;                        // images per chunk
  int64_t rows;                          // output rows per chunk
  at::Tensor columns;                    // the buffer of one chunk
  at::Tensor conv_weight;                // the weight as the plain convolution over the columns takes it
  std::array<int64_t, 2> stride_storage; // that convolution's stride
  ChunkJob job;                          // strides of the columns; the chunk fields are set per chunk
};

Plan plan(const at::Tensor& x, const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& weight,
          const Geometry& g, int64_t budget_bytes, Layout layout) {
  const bool blocks = layout == Layout::kBlocks;
  const int64_t kh = g.kernel_h, kw = g.kernel_w, taps = kh * kw, C = g.in_channels;
  const int64_t group_channels = C / g.groups;
  Plan p{};

  // Columns for one output row of one image; chunk over images, or over rows of a huge image.
  const int64_t row_elements = taps * g.out_w * C;
  const int64_t row_bytes = row_elements * x.element_size();
  p.images = 1;
  p.rows = g.out_h;
  if (row_bytes * g.out_h <= budget_bytes) {
    p.images = std::min(g.batch, std::max<int64_t>(1, budget_bytes / (row_bytes * g.out_h)));
  } else {
    p.rows = std::max<int64_t>(1, budget_bytes / row_bytes);
  }
  const auto cl = x.options().memory_format(at::MemoryFormat::ChannelsLast);
  p.columns = blocks ? at::empty({p.images, C, p.rows * kh, g.out_w * kw}, cl)
                     : at::empty({p.images, taps * C, p.rows, g.out_w}, cl);
  // kTapsAsChannels: [C_out, kh, kw, C_in/groups] flattened matches the column channel order.
  p.conv_weight =
      blocks ? weight : weight.permute({0, 2, 3, 1}).reshape({g.out_channels, taps * group_channels, 1, 1});
  p.stride_storage = blocks ? std::array<int64_t, 2>{kh, kw} : std::array<int64_t, 2>{1, 1};

  ChunkJob& job = p.job;
  for (int d = 0; d < 4; ++d) {
    job.offset_stride[d] = offset.stride(d);
    job.mask_stride[d] = mask.defined() ? mask.stride(d) : 0;
  }
  job.g = g;
  job.image = p.rows * row_elements;
  job.row = row_elements;
  job.column = blocks ? kw * C : taps * C;
  job.tap_y = blocks ? g.out_w * kw * C : kw * group_channels;
  job.tap_x = blocks ? C : group_channels;
  job.group = blocks ? group_channels : taps * group_channels;
  return p;
}

/// Calls `body(n0, nb, r0, rb, columns)` for each chunk after pointing `job` at it.
template <typename Body>
void for_each_chunk(Plan& p, Layout layout, Body&& body) {
  const Geometry& g = p.job.g;
  for (int64_t n0 = 0; n0 < g.batch; n0 += p.images) {
    const int64_t nb = std::min(p.images, g.batch - n0);
    for (int64_t r0 = 0; r0 < g.out_h; r0 += p.rows) {
      const int64_t rb = std::min(p.rows, g.out_h - r0);
      at::Tensor cols =
          p.columns.narrow(0, 0, nb).narrow(2, 0, layout == Layout::kBlocks ? rb * g.kernel_h : rb);
      p.job.image0 = n0;
      p.job.row0 = r0;
      p.job.rows = rb;
      p.job.images = nb;
      body(n0, nb, r0, rb, cols);
    }
  }
}

at::MemoryFormat format_of(const at::Tensor& t) {
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                      : at::MemoryFormat::Contiguous;
}

}  // namespace

at::Tensor forward(
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& bias,
    const std::optional<at::Tensor>& mask,
    const Geometry& g,
    const Sampler& sampler,
    int64_t budget_bytes,
    Layout layout) {
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const auto out_format = format_of(input);
  if (g.batch == 0) {
    return at::empty({0, g.out_channels, g.out_h, g.out_w}, input.options().memory_format(out_format));
  }
  const at::Tensor x = input.contiguous(channels_last);
  const at::Tensor m = mask.has_value() ? *mask : at::Tensor();
  Plan p = plan(x, offset, m, weight, g, budget_bytes, layout);
  const bool one_chunk = p.images >= g.batch && p.rows >= g.out_h;
  at::Tensor out;
  if (!one_chunk) {
    out = at::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.options().memory_format(channels_last));
  }
  for_each_chunk(p, layout, [&](int64_t n0, int64_t nb, int64_t r0, int64_t rb, at::Tensor& cols) {
    sampler(x, offset, m, cols, p.job);
    at::Tensor y = convolve(cols, p.conv_weight, bias, p.stride_storage, g.groups);
    if (one_chunk) {
      out = y;
    } else {
      out.narrow(0, n0, nb).narrow(2, r0, rb).copy_(y);
    }
  });
  return out.contiguous(out_format);
}

namespace {

/// The plain convolution's backward (columns and weight gradients), kept in IEEE float32 on CUDA
/// for the same reason as `convolve`: cuDNN's TF32 switch is lowered for the call when the user
/// did not allow TF32 for matmuls.
std::tuple<at::Tensor, at::Tensor> convolve_backward(const at::Tensor& grad, const at::Tensor& columns,
                                                     const at::Tensor& weight, at::IntArrayRef stride,
                                                     int64_t groups) {
  auto& context = at::globalContext();
  const bool strict = columns.is_cuda() && columns.scalar_type() == at::kFloat && !context.allowTF32CuBLAS() &&
                      context.allowTF32CuDNN();
  if (strict) {
    context.setAllowTF32CuDNN(false);
  }
  std::tuple<at::Tensor, at::Tensor, at::Tensor> result;
  try {
    result = at::convolution_backward(grad, columns, weight, std::nullopt, stride, {0, 0}, {1, 1}, false, {0, 0},
                                      groups, {true, true, false});
  } catch (...) {
    if (strict) {
      context.setAllowTF32CuDNN(true);
    }
    throw;
  }
  if (strict) {
    context.setAllowTF32CuDNN(true);
  }
  return {std::get<0>(result), std::get<1>(result)};
}

}  // namespace

Geometry check_backward_inputs(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    at::IntArrayRef stride,
    at::IntArrayRef padding,
    at::IntArrayRef dilation,
    const std::optional<at::Tensor>& mask) {
  const Geometry g = check_inputs(input, offset, weight, std::nullopt, stride, padding, dilation, mask);
  TORCH_CHECK(grad.dim() == 4 && grad.size(0) == g.batch && grad.size(1) == g.out_channels &&
                  grad.size(2) == g.out_h && grad.size(3) == g.out_w,
              "deform_conv2d_backward: grad must be [", g.batch, ", ", g.out_channels, ", ", g.out_h, ", ", g.out_w,
              "], got ", grad.sizes());
  TORCH_CHECK(grad.scalar_type() == input.scalar_type() && grad.device() == input.device(),
              "deform_conv2d_backward: grad is ", grad.scalar_type(), " on ", grad.device(), " but input is ",
              input.scalar_type(), " on ", input.device());
  return g;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> backward(
    const at::Tensor& grad,
    const at::Tensor& input,
    const at::Tensor& offset,
    const at::Tensor& weight,
    const std::optional<at::Tensor>& mask,
    bool has_bias,
    const Geometry& g,
    const Sampler& sampler,
    const Scatter& scatter,
    int64_t budget_bytes,
    Layout layout) {
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::ScalarType dtype = input.scalar_type();
  const bool reduced = dtype == at::kBFloat16 || dtype == at::kHalf;
  const at::ScalarType acc = reduced ? at::kFloat : dtype;
  const at::Tensor x = input.contiguous(channels_last);
  const at::Tensor off = offset.contiguous();
  const at::Tensor m = mask.has_value() ? mask->contiguous() : at::Tensor();
  const at::Tensor go = grad.contiguous(channels_last);

  // at::zeros would drop the memory format: the scatter indexes this as channels_last.
  at::Tensor grad_input = at::empty(x.sizes(), x.options().dtype(acc).memory_format(channels_last)).zero_();
  at::Tensor grad_offset = at::empty_like(off);
  at::Tensor grad_mask = m.defined() ? at::empty_like(m) : at::empty({0}, x.options());
  at::Tensor grad_bias = has_bias ? go.sum({0, 2, 3}) : at::empty({0}, x.options());
  at::Tensor grad_weight;
  if (g.batch == 0) {
    return {grad_input.to(dtype).contiguous(format_of(input)), grad_offset, at::zeros_like(weight),
            has_bias ? at::zeros({g.out_channels}, x.options()) : grad_bias, grad_mask};
  }

  Plan p = plan(x, off, m, weight, g, budget_bytes, layout);
  const bool one_chunk = p.images >= g.batch && p.rows >= g.out_h;
  for_each_chunk(p, layout, [&](int64_t n0, int64_t nb, int64_t r0, int64_t rb, at::Tensor& cols) {
    sampler(x, off, m, cols, p.job);
    const at::Tensor go_chunk = go.narrow(0, n0, nb).narrow(2, r0, rb);
    auto [grad_cols, grad_conv_weight] = convolve_backward(go_chunk, cols, p.conv_weight, p.stride_storage, g.groups);
    scatter(x, off, m, grad_cols.contiguous(channels_last), grad_input, grad_offset, grad_mask, p.job);
    if (one_chunk) {
      grad_weight = grad_conv_weight;
    } else if (!grad_weight.defined()) {
      grad_weight = grad_conv_weight.to(acc);
    } else {
      grad_weight.add_(grad_conv_weight);
    }
  });
  if (layout == Layout::kTapsAsChannels) {
    grad_weight = grad_weight.reshape({g.out_channels, g.kernel_h, g.kernel_w, -1}).permute({0, 3, 1, 2});
  }
  grad_weight = grad_weight.to(dtype).contiguous(format_of(weight));
  return {grad_input.to(dtype).contiguous(format_of(input)), grad_offset, grad_weight, grad_bias, grad_mask};
}

}  // namespace yolactpp::deform_conv
