// A convolution with few outputs as one matrix product: the window's columns
// [outputs, (channel, tap)] gathered by one copy, times the filter as it is
// stored ([out, in * K], read once), the bias added. Mimi's deep layers give
// 1 to 16 outputs a frame from up to 16.8 MB of filter: the product goes
// to the engine's matrix-vector kernel (one or two rows of bf16) or to
// cuBLAS, where cuDNN's convolution reformats the filter at every call
// (nn/quantized_linear.h chooses). A transposed convolution with few inputs
// likewise: each input's contributions to its K outputs as one product with
// the stored filter, then added where they overlap (col2im).
// On CUDA the product is the default (measured on an H100 with bf16: Mimi at
// one row 0.47 / 0.49 ms each way against 0.57 / 0.57 with cuDNN) for every
// convolution of at most kConvProductMaxLength outputs a row (it is faster at
// 64 rows too), and for a transposed one of at most kConvProductMaxLength
// inputs in the whole batch: at 64 rows its overlaps' sum (col2im) made the
// decoder slower than cuDNN (2.10 against 1.79 ms). The CPU keeps libtorch's
// convolutions (not measured there). PERSONAPLEX_DEEP_CONV=product takes the
// product for every layer within the length on any device,
// PERSONAPLEX_DEEP_CONV=libtorch never.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace personaplex::mimi {

constexpr int64_t kConvProductMaxLength = 16;

// Whether a convolution of `length` outputs a row with these groups, on CUDA
// or not, goes through conv_as_product.
bool conv_as_product_chosen(int64_t length, int64_t groups, bool cuda);

// Whether a transposed convolution of `batch` rows of `length` inputs goes
// through conv_transpose_as_product.
bool conv_transpose_as_product_chosen(int64_t batch, int64_t length, int64_t groups, bool cuda);

// conv1d(x, weight, bias, stride, no padding, dilation) for x [B, C_in, T]
// and weight [C_out, C_in, K] (contiguous): [B, C_out, frames], contiguous.
at::Tensor conv_as_product(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias, int64_t stride,
                           int64_t dilation);

// conv_transpose1d(x, weight, bias, stride) (no padding, no groups) for x
// [B, C_in, T] and weight [C_in, C_out, K] (contiguous): [B, C_out, (T - 1)
// * stride + K], contiguous.
at::Tensor conv_transpose_as_product(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias,
                                     int64_t stride);

}  // namespace personaplex::mimi
