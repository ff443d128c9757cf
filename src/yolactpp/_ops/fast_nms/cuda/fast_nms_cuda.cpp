// FastNMS on CUDA. Sorting, gathering and the final cut use the same ATen calls as the reference
// (so their order is identical by construction); the suppression decision is the kernel in
// fast_nms_kernel.cu.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "../fast_nms.h"
#include "fast_nms_cuda.h"

namespace yolactpp::fast_nms {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> fast_nms_cuda(const at::Tensor& boxes, const at::Tensor& scores,
                                                             double iou_threshold, int64_t top_k,
                                                             int64_t max_detections) {
  check_inputs(boxes, scores, top_k, max_detections);
  TORCH_CHECK(boxes.is_cuda(), "fast_nms: the CUDA kernel got tensors on ", boxes.device());
  const c10::cuda::CUDAGuard guard(boxes.device());
  const int64_t num_classes = scores.size(0);
  const int64_t num_boxes = scores.size(1);
  if (num_boxes == 0 || num_classes == 0) {
    at::Tensor empty = at::empty({0}, boxes.options().dtype(at::kLong));
    return {empty, empty.clone(), at::empty({0}, scores.options())};
  }
  auto [sorted_scores, order] = scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
  const int64_t k = std::min(top_k, num_boxes);
  order = order.narrow(1, 0, k).contiguous();
  sorted_scores = sorted_scores.narrow(1, 0, k);
  const at::Tensor class_boxes = boxes.index_select(0, order.reshape(-1)).contiguous();
  at::Tensor keep = at::empty({num_classes, k}, boxes.options().dtype(at::kBool));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(boxes.scalar_type(), "yolactpp::fast_nms_cuda", [&] {
    C10_CUDA_CHECK(launch_keep<scalar_t>(class_boxes.const_data_ptr<scalar_t>(), num_classes, k,
                                         static_cast<scalar_t>(iou_threshold), keep.mutable_data_ptr<bool>(), stream));
  });
  const at::Tensor labels = at::arange(num_classes, order.options()).view({num_classes, 1}).expand({num_classes, k});
  const at::Tensor index = order.masked_select(keep);
  const at::Tensor kept_labels = labels.masked_select(keep);
  auto [kept_scores, rank] = sorted_scores.masked_select(keep).sort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
  const int64_t n = std::min(max_detections, kept_scores.size(0));
  rank = rank.narrow(0, 0, n);
  return {index.index_select(0, rank), kept_labels.index_select(0, rank), kept_scores.narrow(0, 0, n).contiguous()};
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CUDA, m) {
  m.impl("fast_nms", &fast_nms_cuda);
}

}  // namespace yolactpp::fast_nms
