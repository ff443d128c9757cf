// Plain sizes of one deform_conv2d call, shared with the CUDA kernels (no ATen here: the .cu
// files stay light to compile for every GPU architecture).
#pragma once

#include <cstdint>

namespace yolactpp::deform_conv {

/// Sizes of one deform_conv2d call, validated by `check_inputs`.
struct Geometry {
  int64_t batch, in_channels, height, width;
  int64_t out_channels, kernel_h, kernel_w;
  int64_t out_h, out_w;
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int64_t groups, offset_groups;
};

/// One chunk of columns to sample: images [image0, image0 + n), output rows [row0, row0 + rows).
/// Sample (image n of the chunk, row r, column j, tap ky/kx, input channel c in weight group
/// wg = c / (C_in / groups)) goes to element
///   n*image + r*row + j*column + ky*tap_y + kx*tap_x + wg*group + c % (C_in / groups)
/// of the columns; offset and mask strides are in elements too.
struct ChunkJob {
  int64_t offset_stride[4];
  int64_t mask_stride[4];
  int64_t image0, row0, rows, images;
  int64_t image, row, column, tap_y, tap_x, group;  // columns strides, as above
  Geometry g;
};

}  // namespace yolactpp::deform_conv
