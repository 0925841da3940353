// y = x · (q · diag(scale))ᵀ for 17 to 128 rows of bf16 x and 8-bit weights
// q, on CUDA's tensor cores: what a batch of conversations' linear layers
// are. Each weight is read once, as a byte, and widened in registers; x is
// staged in shared memory a tile at a time and serves the 128 output columns
// of a block; k is split over blocks when the columns alone would leave
// SMs idle, the parts summed (and scaled) by a second kernel. The weight
// bytes read are half of bf16's, where libtorch's paths widen the weights
// into a bf16 copy first.
//
// Plain pointers and a stream, as weight_only_gemv.h.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/weight_only_gemv.h"

namespace personaplex::cuda {

// The most rows of x one call takes.
constexpr int64_t kGemmMaxRows = 128;

// Whether weight_only_gemm takes these sizes and addresses: 1..kGemmMaxRows
// rows, k a multiple of 64, x and q 16-byte aligned, contiguous.
bool weight_only_gemm_fits(int64_t rows, int64_t n, int64_t k, const void *x, const void *q);

// fp32 elements of the workspace a call of these sizes needs on the current
// device (its k split's partial sums).
int64_t weight_only_gemm_workspace(int64_t rows, int64_t n, int64_t k);

// x bf16 [rows, k], q [n, k] (row-major), scale fp32 [n], y bf16 [rows, n],
// workspace fp32 of weight_only_gemm_workspace(rows, n, k) elements.
// Launches on `stream` (capturable in a CUDA graph); returns the
// launch's error.
cudaError_t weight_only_gemm(const void *x, const void *q, const float *scale, void *y, float *workspace,
                             int64_t rows, int64_t n, int64_t k, GemvWeights weights, cudaStream_t stream);

}  // namespace personaplex::cuda
