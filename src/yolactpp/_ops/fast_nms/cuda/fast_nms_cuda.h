// Launcher of the CUDA FastNMS suppression kernel, callable from host C++.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace yolactpp::fast_nms {

/// keep[c, j] for `classes` classes of `k` boxes each ([classes, k, 4], rank order), T = float or
/// double: no higher-ranked box of the class has an IoU with box j above `threshold` (or NaN).
template <typename T>
cudaError_t launch_keep(const T* boxes, int64_t classes, int64_t k, T threshold, bool* keep, cudaStream_t stream);

}  // namespace yolactpp::fast_nms
