// FastNMS, shared by every backend: the operator schema and the input checks.
#include "fast_nms.h"

#include <ATen/ATen.h>
#include <torch/library.h>

namespace yolactpp::fast_nms {

TORCH_LIBRARY_FRAGMENT(yolactpp, m) {
  m.def(
      "fast_nms(Tensor boxes, Tensor scores, float iou_threshold, int top_k, int max_detections) "
      "-> (Tensor, Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
}

void check_inputs(const at::Tensor& boxes, const at::Tensor& scores, int64_t top_k, int64_t max_detections) {
  TORCH_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "fast_nms: boxes must be [K, 4], got ", boxes.sizes());
  TORCH_CHECK(scores.dim() == 2 && scores.size(1) == boxes.size(0), "fast_nms: scores must be [C, K] with K = ",
              boxes.size(0), " boxes, got ", scores.sizes());
  TORCH_CHECK(boxes.scalar_type() == scores.scalar_type(), "fast_nms: boxes (", boxes.scalar_type(),
              ") and scores (", scores.scalar_type(), ") must have the same dtype");
  TORCH_CHECK(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
              "fast_nms: the native kernels take float32 or float64, got ", boxes.scalar_type());
  TORCH_CHECK(boxes.device() == scores.device(), "fast_nms: boxes are on ", boxes.device(), " but scores on ",
              scores.device());
  TORCH_CHECK(top_k >= 1 && max_detections >= 0, "fast_nms: top_k must be >= 1 and max_detections >= 0, got ",
              top_k, ", ", max_detections);
}

}  // namespace yolactpp::fast_nms
