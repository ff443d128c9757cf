// FastNMS on the CPU.
//
// Per class (in parallel): the top_k boxes in the order of a stable descending sort (NaN first,
// ties by lower index), then box j survives when no higher-ranked box i of its class has
// !(iou(i, j) <= threshold), which is the reference's "max over the upper triangle <= threshold"
// including its zero diagonal and NaN => suppressed. Survivors of all classes, in class-major
// rank order, are then ordered by a stable descending sort and cut to max_detections.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <type_traits>
#include <vector>

#include "../../cpu_isa.h"
#include "../fast_nms.h"

namespace yolactpp::fast_nms {

namespace {

/// The order of torch's stable descending sort: NaN first, then larger, ties by lower position.
template <typename T>
bool ranks_before(T a, int64_t ia, T b, int64_t ib) {
  const bool a_nan = a != a;
  const bool b_nan = b != b;
  if (a_nan || b_nan) {
    return a_nan && b_nan ? ia < ib : a_nan;
  }
  return a > b || (a == b && ia < ib);
}

/// Ranks j of the k boxes (SoA x1, y1, x2, y2, area, in rank order) that no higher-ranked box
/// suppresses, i.e. !(iou(i, j) <= threshold) for no i < j.
template <typename T>
C10_ALWAYS_INLINE void survivors(const T* __restrict soa, int64_t k, T threshold, std::vector<int64_t>& kept) {
  const T* __restrict x1 = soa;
  const T* __restrict y1 = x1 + k;
  const T* __restrict x2 = y1 + k;
  const T* __restrict y2 = x2 + k;
  const T* __restrict ar = y2 + k;
  for (int64_t j = 0; j < k; ++j) {
    const T bx1 = x1[j], by1 = y1[j], bx2 = x2[j], by2 = y2[j], b_area = ar[j];
    // An integer reduction as wide as T, no early exit: the loop vectorises.
    using Flag = std::conditional_t<sizeof(T) == 8, int64_t, int32_t>;
    Flag suppressed = 0;
    for (int64_t i = 0; i < j; ++i) {
      const T v = iou(x1[i], y1[i], x2[i], y2[i], ar[i], bx1, by1, bx2, by2, b_area);
      suppressed |= v <= threshold ? Flag{0} : Flag{1};
    }
    if (suppressed == 0) {
      kept.push_back(j);
    }
  }
}

template <typename T>
using SurvivorsFn = void (*)(const T*, int64_t, T, std::vector<int64_t>&);

template <typename T>
void survivors_default(const T* soa, int64_t k, T threshold, std::vector<int64_t>& kept) {
  survivors(soa, k, threshold, kept);
}

#if YOLACTPP_X86_DISPATCH
template <typename T>
YOLACTPP_TARGET_AVX2 void survivors_avx2(const T* soa, int64_t k, T threshold, std::vector<int64_t>& kept) {
  survivors(soa, k, threshold, kept);
}

template <typename T>
YOLACTPP_TARGET_AVX512 void survivors_avx512(const T* soa, int64_t k, T threshold, std::vector<int64_t>& kept) {
  survivors(soa, k, threshold, kept);
}
#endif

/// The widest vector code this CPU runs. Every variant evaluates the same IEEE operations (no FMA
/// contraction: -ffp-contract=off), so they agree bit for bit.
template <typename T>
SurvivorsFn<T> pick_survivors() {
#if YOLACTPP_X86_DISPATCH
  if (cpu_isa_level() >= 2) return &survivors_avx512<T>;
  if (cpu_isa_level() == 1) return &survivors_avx2<T>;
#endif
  return &survivors_default<T>;
}

/// One class: its top_k boxes in ranking order (`order`) and the survivors' ranks (`kept`).
template <typename T>
void class_survivors(
    const T* scores,  // this class's K scores
    const T* boxes,   // [K, 4]
    int64_t num_boxes,
    int64_t top_k,
    T threshold,
    std::vector<int64_t>& order,
    std::vector<T>& soa,
    std::vector<int64_t>& kept) {
  order.resize(static_cast<size_t>(num_boxes));
  std::iota(order.begin(), order.end(), int64_t{0});
  const int64_t k = std::min(top_k, num_boxes);
  auto before = [scores](int64_t a, int64_t b) { return ranks_before(scores[a], a, scores[b], b); };
  if (k < num_boxes) {
    std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
  } else {
    std::sort(order.begin(), order.end(), before);  // a total order: equal to the stable sort
  }
  order.resize(static_cast<size_t>(k));
  soa.resize(static_cast<size_t>(5 * k));
  for (int64_t r = 0; r < k; ++r) {
    const T* b = boxes + 4 * order[r];
    soa[r] = b[0];
    soa[k + r] = b[1];
    soa[2 * k + r] = b[2];
    soa[3 * k + r] = b[3];
    soa[4 * k + r] = area(b[0], b[1], b[2], b[3]);
  }
  kept.clear();
  if (!(T(0) <= threshold)) {
    return;  // the zero diagonal of the reference's IoU matrix already exceeds the threshold
  }
  pick_survivors<T>()(soa.data(), k, threshold, kept);
}

template <typename T>
std::tuple<at::Tensor, at::Tensor, at::Tensor> fast_nms_cpu_typed(
    const at::Tensor& boxes_in,
    const at::Tensor& scores_in,
    double iou_threshold,
    int64_t top_k,
    int64_t max_detections) {
  const at::Tensor boxes = boxes_in.contiguous();
  const at::Tensor scores = scores_in.contiguous();
  const int64_t num_classes = scores.size(0);
  const int64_t num_boxes = scores.size(1);
  const T threshold = static_cast<T>(iou_threshold);  // torch compares in the tensor's dtype
  const T* box_data = boxes.const_data_ptr<T>();
  const T* score_data = scores.const_data_ptr<T>();

  // Per class: ranks (within the class's sorted top_k) of the survivors, and the sorted order.
  std::vector<std::vector<int64_t>> kept(static_cast<size_t>(num_classes));
  std::vector<std::vector<int64_t>> orders(static_cast<size_t>(num_classes));
  at::parallel_for(0, num_classes, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> soa;
    for (int64_t c = begin; c < end; ++c) {
      class_survivors(score_data + c * num_boxes, box_data, num_boxes, top_k, threshold, orders[c], soa, kept[c]);
    }
  });

  // Survivors in the reference's class-major order, then a stable sort by score, cut.
  struct Survivor {
    T score;
    int64_t box, label;
  };
  std::vector<Survivor> all;
  for (int64_t c = 0; c < num_classes; ++c) {
    for (const int64_t r : kept[c]) {
      const int64_t box = orders[c][r];
      all.push_back({score_data[c * num_boxes + box], box, c});
    }
  }
  const int64_t n = std::min<int64_t>(max_detections, static_cast<int64_t>(all.size()));
  std::vector<int64_t> rank(all.size());
  std::iota(rank.begin(), rank.end(), int64_t{0});
  std::partial_sort(rank.begin(), rank.begin() + n, rank.end(), [&all](int64_t a, int64_t b) {
    return ranks_before(all[a].score, a, all[b].score, b);
  });

  at::Tensor index = at::empty({n}, boxes.options().dtype(at::kLong));
  at::Tensor labels = at::empty({n}, boxes.options().dtype(at::kLong));
  at::Tensor out_scores = at::empty({n}, scores.options());
  int64_t* index_data = index.mutable_data_ptr<int64_t>();
  int64_t* label_data = labels.mutable_data_ptr<int64_t>();
  T* out_score_data = out_scores.mutable_data_ptr<T>();
  for (int64_t i = 0; i < n; ++i) {
    const Survivor& s = all[static_cast<size_t>(rank[i])];
    index_data[i] = s.box;
    label_data[i] = s.label;
    out_score_data[i] = s.score;
  }
  return {index, labels, out_scores};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fast_nms_cpu(
    const at::Tensor& boxes,
    const at::Tensor& scores,
    double iou_threshold,
    int64_t top_k,
    int64_t max_detections) {
  check_inputs(boxes, scores, top_k, max_detections);
  TORCH_CHECK(boxes.device().is_cpu(), "fast_nms: the CPU kernel got tensors on ", boxes.device());
  if (boxes.scalar_type() == at::kDouble) {
    return fast_nms_cpu_typed<double>(boxes, scores, iou_threshold, top_k, max_detections);
  }
  return fast_nms_cpu_typed<float>(boxes, scores, iou_threshold, top_k, max_detections);
}

}  // namespace

TORCH_LIBRARY_IMPL(yolactpp, CPU, m) {
  m.impl("fast_nms", &fast_nms_cpu);
}

}  // namespace yolactpp::fast_nms
