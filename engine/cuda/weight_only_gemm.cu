#include "cuda/weight_only_gemm.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "cuda/chained_launch.cuh"
#include "cuda/widen_mma.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kLanes = 32;
constexpr int kColumns = 128;  // output columns per block
constexpr int kTile = 64;      // k per tile: each lane's 16 bytes of a weight row, 4 lanes
// A staged row of x is kTile bf16 and 4 more: rows 136 bytes apart, so the
// 16 lanes of a half-warp reading 8 bytes each (rows g, offsets 32t + 8s)
// hit 32 different banks.
constexpr int kRowStride = kTile + 4;

// An 8-byte asynchronous copy from global to shared memory; zeros where
// `live` is false (rows past the last).
__device__ __forceinline__ void copy8_async(void *shared, const void *global, bool live) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(global), "r"(live ? 8 : 0));
}

__device__ __forceinline__ void copies_committed() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void copies_done() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Warps of a block owning 16 * CT columns each.
template <int CT>
constexpr int kWarpsOf = kColumns / (16 * CT);

// A warp's sums into its split's part (fp32 [rows, n]): acc[nt][c] holds
// columns col + 16c + g and + 8, x rows nt * 8 + 2t and + 1.
template <int NT, int CT>
__device__ __forceinline__ void store_parts(const float (&acc)[NT][CT][4], float *out, int rows, int n, int col, int g,
                                            int t) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int r = nt * 8 + 2 * t;
#pragma unroll
    for (int c = 0; c < CT; ++c) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int cc = col + 16 * c + g + 8 * h;
        if (cc >= n) continue;
        if (r < rows) out[size_t(r) * n + cc] = acc[nt][c][2 * h];
        if (r + 1 < rows) out[size_t(r + 1) * n + cc] = acc[nt][c][2 * h + 1];
      }
    }
  }
}

// Blocks of 128 columns, and k split into `splits` ranges of whole tiles:
// block (c, s) sums x · qᵀ over its range into part[s] (fp32 [rows, n]).
// The block stages x [NT * 8 rows, 64] in shared memory a tile ahead:
// asynchronous copies fill the other buffer while this tile is used (one
// barrier a tile), where staging each tile in place made every tile wait
// for its x to come from L2. A warp owns CT groups of 16 columns, lane
// (g, t) loads 16 contiguous bytes of columns g and g + 8 of each and feeds,
// per 8 rows of x, four m16n8k16 products a group, with the k permutation
// of weight_only_gemv's mma kernel (lane t's positions of step s are its
// bytes 4s..4s+3, in the weights and in x alike). Each x fragment read from
// shared memory serves the CT groups: with two, half the shared-memory
// reads per weight byte.
template <GemvWeights W, int NT, int CT>
__global__ void __launch_bounds__(kWarpsOf<CT> *kLanes)
    gemm_kernel(const __nv_bfloat16 *__restrict__ x, const uint8_t *__restrict__ q, float *__restrict__ part, int rows,
                int n, int k, int tiles_per_split) {
  wait_for_previous();
  start_next();
  constexpr int kThreads = kWarpsOf<CT> * kLanes;
  __shared__ __align__(16) __nv_bfloat16 xs[2][NT * 8][kRowStride];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int g = lane / 4, t = lane % 4;
  const int col = blockIdx.x * kColumns + warp * 16 * CT;
  const int tiles = k / kTile;
  const int first = blockIdx.y * tiles_per_split, last = min(tiles, first + tiles_per_split);
  const uint4 *wa[CT], *wb[CT];
#pragma unroll
  for (int c = 0; c < CT; ++c) {
    wa[c] = reinterpret_cast<const uint4 *>(q + size_t(min(col + 16 * c + g, n - 1)) * k) + t;
    wb[c] = reinterpret_cast<const uint4 *>(q + size_t(min(col + 16 * c + g + 8, n - 1)) * k) + t;
  }
  float acc[NT][CT][4] = {};
  // The next tile's weights are loaded while this one's are used: twice the
  // bytes in flight.
  uint4 va[CT], vb[CT];
#pragma unroll
  for (int c = 0; c < CT; ++c) {
    va[c] = vb[c] = make_uint4(0, 0, 0, 0);
    if (first < last) va[c] = __ldg(wa[c] + first * 4), vb[c] = __ldg(wb[c] + first * 4);
  }
  // x's tile into buffer `buf`: 8 16-byte pieces a row, copied as two
  // 8-byte halves (a padded row's start is 8-byte aligned only).
  auto stage = [&](int tile, int buf) {
    for (int i = threadIdx.x; i < NT * 8 * 8; i += kThreads) {
      const int r = i / 8, piece = i % 8;
      const __nv_bfloat16 *src = x + size_t(r < rows ? r : 0) * k + tile * kTile + piece * 8;
      copy8_async(&xs[buf][r][piece * 8], src, r < rows);
      copy8_async(&xs[buf][r][piece * 8 + 4], src + 4, r < rows);
    }
    copies_committed();
  };
  if (first < last) stage(first, 0);
  for (int tile = first; tile < last; ++tile) {
    const int buf = (tile - first) & 1;
    uint4 next_a[CT], next_b[CT];
#pragma unroll
    for (int c = 0; c < CT; ++c) {
      next_a[c] = va[c];
      next_b[c] = vb[c];
      if (tile + 1 < last) next_a[c] = __ldg(wa[c] + (tile + 1) * 4), next_b[c] = __ldg(wb[c] + (tile + 1) * 4);
    }
    // This tile's x has landed, and every warp is done with the other
    // buffer (the last tile's): the next tile's copies may start.
    copies_done();
    __syncthreads();
    if (tile + 1 < last) stage(tile + 1, buf ^ 1);
    uint32_t a[CT][4][4];
#pragma unroll
    for (int c = 0; c < CT; ++c) weight_fragments<W>(va[c], vb[c], a[c]);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint2 h = *reinterpret_cast<const uint2 *>(&xs[buf][nt * 8 + g][t * 16 + 4 * s]);
#pragma unroll
        for (int c = 0; c < CT; ++c) mma_bf16(acc[nt][c], a[c][s][0], a[c][s][1], a[c][s][2], a[c][s][3], h.x, h.y);
      }
    }
#pragma unroll
    for (int c = 0; c < CT; ++c) {
      va[c] = next_a[c];
      vb[c] = next_b[c];
    }
  }
  store_parts<NT, CT>(acc, part + size_t(blockIdx.y) * rows * n, rows, n, col, g, t);
}

// y = (Σ_s part[s]) · scale, as bf16.
__global__ void sum_parts_kernel(const float *__restrict__ part, const float *__restrict__ scale,
                                 __nv_bfloat16 *__restrict__ y, int rows, int n, int splits) {
  wait_for_previous();
  start_next();
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x, total = size_t(rows) * n;
  if (i >= total) return;
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) sum += part[size_t(s) * total + i];
  y[i] = __float2bfloat16(sum * scale[i % n]);
}

int sm_count() {
  int device = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return 1;
  return sms;
}

// Splits of k: enough blocks for two per SM, each at least two tiles long.
int splits_for(int64_t n, int64_t k) {
  const int64_t column_blocks = (n + kColumns - 1) / kColumns, tiles = k / kTile;
  const int64_t wanted = (2 * sm_count() + column_blocks - 1) / column_blocks;
  return int(std::max<int64_t>(1, std::min<int64_t>(wanted, tiles / 2)));
}

template <GemvWeights W, int NT, int CT>
cudaError_t launch_gemm(const void *x, const void *q, float *part, int rows, int n, int k, int splits,
                        cudaStream_t stream) {
  const int tiles = k / kTile, per_split = (tiles + splits - 1) / splits;
  const dim3 grid((n + kColumns - 1) / kColumns, splits), block(kWarpsOf<CT> * kLanes);
  return launch_chained(gemm_kernel<W, NT, CT>, grid, block, 0, stream, static_cast<const __nv_bfloat16 *>(x),
                        static_cast<const uint8_t *>(q), part, rows, n, k, per_split);
}

// Two column groups a warp from 33 to 64 rows (measured on an H200, x staged
// in place: 1.1-1.9x faster at 64 rows, slower at 32; staged ahead: 1.0-1.4x
// at 64, even at 32); past 64 their accumulators would not fit in registers.
template <GemvWeights W>
cudaError_t launch_rows(const void *x, const void *q, float *part, int rows, int n, int k, int splits,
                        cudaStream_t stream) {
  if (rows <= 32) return launch_gemm<W, 4, 1>(x, q, part, rows, n, k, splits, stream);
  if (rows <= 64) return launch_gemm<W, 8, 2>(x, q, part, rows, n, k, splits, stream);
  return launch_gemm<W, 16, 1>(x, q, part, rows, n, k, splits, stream);
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool weight_only_gemm_fits(int64_t rows, int64_t n, int64_t k, const void *x, const void *q) {
  return rows >= 1 && rows <= kGemmMaxRows && n >= 1 && k >= kTile && k % kTile == 0 &&
         rows * n < (int64_t(1) << 31) && n * k < (int64_t(1) << 40) && k < (int64_t(1) << 31) && aligned16(x) &&
         aligned16(q);
}

int64_t weight_only_gemm_workspace(int64_t rows, int64_t n, int64_t k) {
  return int64_t(splits_for(n, k)) * rows * n;
}

cudaError_t weight_only_gemm(const void *x, const void *q, const float *scale, void *y, float *workspace,
                             int64_t rows, int64_t n, int64_t k, GemvWeights weights, cudaStream_t stream) {
  if (!weight_only_gemm_fits(rows, n, k, x, q)) return cudaErrorInvalidValue;
  const int splits = splits_for(n, k);
  const cudaError_t e =
      weights == GemvWeights::kInt8
          ? launch_rows<GemvWeights::kInt8>(x, q, workspace, int(rows), int(n), int(k), splits, stream)
          : launch_rows<GemvWeights::kFp8E4M3>(x, q, workspace, int(rows), int(n), int(k), splits, stream);
  if (e != cudaSuccess) return e;
  const int64_t total = rows * n;
  const int threads = 256;
  return launch_chained(sum_parts_kernel, dim3(unsigned((total + threads - 1) / threads)), dim3(threads), 0, stream,
                        workspace, scale, static_cast<__nv_bfloat16 *>(y), int(rows), int(n), splits);
}

}  // namespace personaplex::cuda
