// The IoU of class-wise FastNMS, shared by the CPU and CUDA kernels (no ATen here: the .cu
// file stays light to compile for every GPU architecture).
//
// The kernels must equal yolactpp.ops.fast_nms_reference bit for bit on float32 and float64, so
// the IoU below is evaluated with the reference's exact operation order, one IEEE rounding per
// operation (no fused multiply-add; on the GPU the _rn intrinsics guarantee it), NaN propagating
// through min/max/clamp like torch.maximum/minimum/clamp.
#pragma once

#if defined(__CUDACC__)
#define YOLACTPP_HD __host__ __device__ __forceinline__
#else
#define YOLACTPP_HD inline
#endif

namespace yolactpp::fast_nms {

YOLACTPP_HD float sub_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
YOLACTPP_HD double sub_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
YOLACTPP_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
YOLACTPP_HD double add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
YOLACTPP_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
YOLACTPP_HD double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
YOLACTPP_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
YOLACTPP_HD double div_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __ddiv_rn(a, b);
#else
  return a / b;
#endif
}

/// torch.maximum / torch.minimum / clamp(min=0): NaN in, NaN out.
template <typename T>
YOLACTPP_HD T max_nan(T a, T b) {
  return (a > b || a != a) ? a : b;
}
template <typename T>
YOLACTPP_HD T min_nan(T a, T b) {
  return (a < b || a != a) ? a : b;
}
template <typename T>
YOLACTPP_HD T clamp0_nan(T a) {
  return a < T(0) ? T(0) : a;
}

/// Box area (x2 - x1) * (y2 - y1), as the reference computes it.
template <typename T>
YOLACTPP_HD T area(T x1, T y1, T x2, T y2) {
  return mul_rn(sub_rn(x2, x1), sub_rn(y2, y1));
}

/// IoU of box a (the higher-ranked one, row i of the reference matrix) and box b (column j).
template <typename T>
YOLACTPP_HD T iou(T ax1, T ay1, T ax2, T ay2, T a_area, T bx1, T by1, T bx2, T by2, T b_area) {
  const T w = clamp0_nan(sub_rn(min_nan(ax2, bx2), max_nan(ax1, bx1)));
  const T h = clamp0_nan(sub_rn(min_nan(ay2, by2), max_nan(ay1, by1)));
  const T inter = mul_rn(w, h);
  return div_rn(inter, sub_rn(add_rn(a_area, b_area), inter));
}

}  // namespace yolactpp::fast_nms
