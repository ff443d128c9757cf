// Launcher of the CUDA sampling kernel, callable from host C++ without CUDA headers beyond the
// runtime API.
#pragma once

#include <cuda_runtime_api.h>

#include "../geometry.h"

namespace yolactpp::deform_conv {

/// Fills the columns of one chunk (see ChunkJob) on `stream`; T is float,
/// double, c10::Half or c10::BFloat16. `mask` may be null (all ones).
template <typename T>
cudaError_t launch_sample(const T* input, const T* offset, const T* mask, T* columns, const ChunkJob& job,
                          cudaStream_t stream);

}  // namespace yolactpp::deform_conv
