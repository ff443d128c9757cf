// FastNMS suppression kernel on CUDA: one block per class, one thread per candidate j, deciding
// with the reference's exact IoU expression whether any higher-ranked box i suppresses it. It
// replaces the reference's [C, k, k] IoU matrix and its column max.
#include <algorithm>

#include "fast_nms_cuda.h"
#include "../iou.h"

namespace yolactpp::fast_nms {
namespace {

template <typename T>
__global__ void keep_kernel(const T* __restrict__ boxes, int64_t k, T threshold, bool* __restrict__ keep) {
  const T* b = boxes + static_cast<int64_t>(blockIdx.x) * k * 4;  // this class's boxes, rank order
  for (int64_t j = threadIdx.x; j < k; j += blockDim.x) {
    const T bx1 = b[4 * j], by1 = b[4 * j + 1], bx2 = b[4 * j + 2], by2 = b[4 * j + 3];
    const T b_area = area(bx1, by1, bx2, by2);
    bool kept = T(0) <= threshold;  // the reference's zero diagonal
    for (int64_t i = 0; i < j && kept; ++i) {
      const T ax1 = b[4 * i], ay1 = b[4 * i + 1], ax2 = b[4 * i + 2], ay2 = b[4 * i + 3];
      kept = iou(ax1, ay1, ax2, ay2, area(ax1, ay1, ax2, ay2), bx1, by1, bx2, by2, b_area) <= threshold;
    }
    keep[static_cast<int64_t>(blockIdx.x) * k + j] = kept;
  }
}

}  // namespace

template <typename T>
cudaError_t launch_keep(const T* boxes, int64_t classes, int64_t k, T threshold, bool* keep, cudaStream_t stream) {
  if (classes == 0 || k == 0) {
    return cudaSuccess;
  }
  const int threads = static_cast<int>(std::min<int64_t>(256, ((k + 31) / 32) * 32));
  keep_kernel<T><<<static_cast<unsigned>(classes), threads, 0, stream>>>(boxes, k, threshold, keep);
  return cudaGetLastError();
}

template cudaError_t launch_keep<float>(const float*, int64_t, int64_t, float, bool*, cudaStream_t);
template cudaError_t launch_keep<double>(const double*, int64_t, int64_t, double, bool*, cudaStream_t);

}  // namespace yolactpp::fast_nms
