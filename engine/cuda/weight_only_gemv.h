// y = x · (q · diag(scale))ᵀ for a few rows of x and 8-bit weights q, on
// CUDA: the weights are read once, as bytes, and widened in registers (no
// bf16 copy of them, no separate pass over the activations). At batch 1 a
// linear layer is a matrix-vector product bound by the weight bytes read:
// 8-bit weights then cost half of bf16's time, where widening them first
// cost more than bf16 itself. Past two rows of bf16 x the widened weights go
// to the tensor cores (bf16 products, fp32 sums), so each weight read serves
// every row at no extra arithmetic cost.
//
// bf16 weights take the same kernel as they are (no scale). Where the
// columns alone would leave the GPU's warps idle (the narrower products),
// a few warps share each column: at one row that reads the depth
// transformer's products in a third of cuBLAS's time (which splits k and
// reduces in a second kernel) and 4096-wide ones faster too; the wide ones
// are cuBLAS's (nn/quantized_linear.cpp chooses).
//
// Plain pointers and a stream: this header and its kernels know nothing of
// libtorch (nn/quantized_linear.cpp calls them with its tensors).
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

namespace personaplex::cuda {

enum class GemvWeights { kInt8, kFp8E4M3, kBFloat16 };
enum class GemvFloats { kFloat32, kBFloat16 };  // x and y

// The most rows of x one call takes; more are a matrix product's work.
constexpr int64_t kGemvMaxRows = 16;

// Whether weight_only_gemv takes these sizes and addresses: 1..kGemvMaxRows
// rows, k a multiple of 16, x, q and y 16-byte aligned, contiguous.
bool weight_only_gemv_fits(int64_t rows, int64_t n, int64_t k, const void *x, const void *q, const void *y);

// x [rows, k], q [n, k] (row-major), scale fp32 [n] (null: none, for bf16
// weights), y [rows, n]. Launches on `stream` (capturable in a CUDA graph);
// returns the launch's error.
cudaError_t weight_only_gemv(const void *x, const void *q, const float *scale, void *y, int64_t rows, int64_t n,
                             int64_t k, GemvWeights weights, GemvFloats floats, cudaStream_t stream);

// The most rows weight_only_gemv_silu_gate takes.
constexpr int64_t kGatedGemvMaxRows = 2;

// A gated MLP's input and its SiLU gate in one launch: with q [2 * hidden,
// k] (the a and b halves) and scale [2 * hidden], y [rows, hidden] =
// silu(a) * b, the same bits as weight_only_gemv into [rows, 2 * hidden]
// followed by cuda/silu_gate.h. One or two rows; cudaErrorNotSupported
// (nothing launched) where weight_only_gemv would split a column over warps
// for these sizes, whose sums the gated kernel does not reproduce.
cudaError_t weight_only_gemv_silu_gate(const void *x, const void *q, const float *scale, void *y, int64_t rows,
                                       int64_t hidden, int64_t k, GemvWeights weights, GemvFloats floats,
                                       cudaStream_t stream);

}  // namespace personaplex::cuda
