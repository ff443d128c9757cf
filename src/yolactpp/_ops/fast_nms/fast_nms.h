// Class-wise FastNMS (YOLACT): declarations shared by the CPU and CUDA kernels.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "iou.h"

namespace yolactpp::fast_nms {

/// Validates boxes [K, 4] and scores [C, K] (float32/float64, same device) and the limits.
void check_inputs(const at::Tensor& boxes, const at::Tensor& scores, int64_t top_k, int64_t max_detections);

}  // namespace yolactpp::fast_nms
