// The Python module around the `yolactpp` operator library, and its build record.
//
// There is no pybind: `import yolactpp._C` (or `torch.ops.load_library` on this file) only runs
// the static initialisers of the other files, which define the schemas (<op>/<op>.cpp) and
// register the kernels per backend (cpu/, cuda/, autocast/).
#include <Python.h>

#ifndef YOLACTPP_BUILD_TORCH
#error "build with setup.py or `yolactpp build-ops`: they define YOLACTPP_BUILD_TORCH and YOLACTPP_BUILD_CUDA"
#endif
#define YOLACTPP_STR2(x) #x
#define YOLACTPP_STR(x) YOLACTPP_STR2(x)

extern "C" {
/// The torch (and CUDA) this library was compiled against, read from the file by
/// yolactpp.ops._library before loading it: a library built for another torch is never loaded.
extern const char yolactpp_build_record[];
__attribute__((used)) const char yolactpp_build_record[] =
    "yolactpp-build-record:torch=" YOLACTPP_STR(YOLACTPP_BUILD_TORCH) ";cuda=" YOLACTPP_STR(YOLACTPP_BUILD_CUDA) ";";

/// Entry point Python calls on `import yolactpp._C`: an empty module.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}
