// Operator schemas of the `yolactpp` library and the empty Python module around it.
//
// There is no pybind: `import yolactpp._C` (or `torch.ops.load_library` on this file) only runs
// the static initialisers below, which register the schemas; kernels register themselves per
// backend in their own files with TORCH_LIBRARY_IMPL.
#include <Python.h>

#include <torch/library.h>

extern "C" {
/// Entry point Python calls on `import yolactpp._C`: an empty module.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(yolactpp, m) {
  m.def(
      "deform_conv2d(Tensor input, Tensor offset, Tensor weight, Tensor? bias, int[2] stride, "
      "int[2] padding, int[2] dilation, Tensor? mask) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "fast_nms(Tensor boxes, Tensor scores, float iou_threshold, int top_k, int max_detections) "
      "-> (Tensor, Tensor, Tensor)",
      {at::Tag::pt2_compliant_tag});
}
