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

/// The backward's scatter for one chunk (see Scatter in ../deform_conv.h) on `stream`: one warp
/// per (pixel, offset group, tap) reduces the offset and mask gradients over the channels and
/// adds the input gradient into `grad_input` (channels_last, accumulation type A: float for
/// c10::Half / c10::BFloat16) with atomicAdd. offset, mask and their gradients are contiguous;
/// `mask` / `grad_mask` may be null.
template <typename T, typename A>
cudaError_t launch_scatter(const T* input, const T* offset, const T* mask, const T* grad_columns, A* grad_input,
                           T* grad_offset, T* grad_mask, const ChunkJob& job, cudaStream_t stream);

}  // namespace yolactpp::deform_conv
