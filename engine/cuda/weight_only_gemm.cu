#include "cuda/weight_only_gemm.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>

#include "cuda/widen_mma.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kLanes = 32;
constexpr int kColumns = 16 * kWarps;  // output columns per block: 16 per warp
constexpr int kTile = 64;              // k per tile: each lane's 16 bytes of a weight row, 4 lanes
// A staged row of x is kTile bf16 and 4 more: rows 136 bytes apart, so the
// 16 lanes of a half-warp reading 8 bytes each (rows g, offsets 32t + 8s)
// hit 32 different banks.
constexpr int kRowStride = kTile + 4;

// Blocks of 128 columns, and k split into `splits` ranges of whole tiles:
// block (c, s) sums x · qᵀ over its range into part[s] (fp32 [rows, n]).
// Per tile, the block stages x [NT * 8 rows, 64] in shared memory (double
// buffered: one barrier a tile); warp w owns columns 16w..16w+15, lane (g, t)
// loads 16 contiguous bytes of columns g and g + 8 and feeds, per 8 rows of
// x, four m16n8k16 products, with the k permutation of weight_only_gemv's
// mma kernel (lane t's positions of step s are its bytes 4s..4s+3, in the
// weights and in x alike).
template <GemvWeights W, int NT>
__global__ void __launch_bounds__(kWarps *kLanes)
    gemm_kernel(const __nv_bfloat16 *__restrict__ x, const uint8_t *__restrict__ q, float *__restrict__ part, int rows,
                int n, int k, int tiles_per_split) {
  __shared__ __align__(16) __nv_bfloat16 xs[2][NT * 8][kRowStride];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int g = lane / 4, t = lane % 4;
  const int col = blockIdx.x * kColumns + warp * 16;
  const int tiles = k / kTile;
  const int first = blockIdx.y * tiles_per_split, last = min(tiles, first + tiles_per_split);
  const uint4 *wa = reinterpret_cast<const uint4 *>(q + size_t(min(col + g, n - 1)) * k) + t;
  const uint4 *wb = reinterpret_cast<const uint4 *>(q + size_t(min(col + g + 8, n - 1)) * k) + t;
  float acc[NT][4] = {};
  // The next tile's weights are loaded while this one's are used: twice the
  // bytes in flight.
  uint4 va = make_uint4(0, 0, 0, 0), vb = va;
  if (first < last) va = __ldg(wa + first * 4), vb = __ldg(wb + first * 4);
  for (int tile = first; tile < last; ++tile) {
    const int buf = (tile - first) & 1;
    uint4 next_a = va, next_b = vb;
    if (tile + 1 < last) next_a = __ldg(wa + (tile + 1) * 4), next_b = __ldg(wb + (tile + 1) * 4);
    // Stage x's tile: 8 16-byte pieces a row, stored as two 8-byte halves
    // (a row's start is 8-byte aligned only).
    for (int i = threadIdx.x; i < NT * 8 * 8; i += kWarps * kLanes) {
      const int r = i / 8, piece = i % 8;
      const uint4 v = r < rows ? __ldg(reinterpret_cast<const uint4 *>(x + size_t(r) * k + tile * kTile) + piece)
                               : make_uint4(0, 0, 0, 0);
      uint2 *dst = reinterpret_cast<uint2 *>(&xs[buf][r][piece * 8]);
      dst[0] = make_uint2(v.x, v.y);
      dst[1] = make_uint2(v.z, v.w);
    }
    __syncthreads();
    uint32_t a[4][4];
    weight_fragments<W>(va, vb, a);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint2 h = *reinterpret_cast<const uint2 *>(&xs[buf][nt * 8 + g][t * 16 + 4 * s]);
        mma_bf16(acc[nt], a[s][0], a[s][1], a[s][2], a[s][3], h.x, h.y);
      }
    }
    va = next_a;
    vb = next_b;
  }
  // acc[nt]: columns g and g + 8, x rows nt * 8 + 2t and + 1.
  float *out = part + size_t(blockIdx.y) * rows * n;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int r = nt * 8 + 2 * t;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int c = col + g + 8 * h;
      if (c >= n) continue;
      if (r < rows) out[size_t(r) * n + c] = acc[nt][2 * h];
      if (r + 1 < rows) out[size_t(r + 1) * n + c] = acc[nt][2 * h + 1];
    }
  }
}

// y = (Σ_s part[s]) · scale, as bf16.
__global__ void sum_parts_kernel(const float *__restrict__ part, const float *__restrict__ scale,
                                 __nv_bfloat16 *__restrict__ y, int rows, int n, int splits) {
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

template <GemvWeights W, int NT>
void launch_gemm(const void *x, const void *q, float *part, int rows, int n, int k, int splits, cudaStream_t stream) {
  const int tiles = k / kTile, per_split = (tiles + splits - 1) / splits;
  const dim3 grid((n + kColumns - 1) / kColumns, splits), block(kWarps * kLanes);
  gemm_kernel<W, NT><<<grid, block, 0, stream>>>(static_cast<const __nv_bfloat16 *>(x),
                                                  static_cast<const uint8_t *>(q), part, rows, n, k, per_split);
}

template <GemvWeights W>
void launch_rows(const void *x, const void *q, float *part, int rows, int n, int k, int splits, cudaStream_t stream) {
  if (rows <= 32) launch_gemm<W, 4>(x, q, part, rows, n, k, splits, stream);
  else if (rows <= 64) launch_gemm<W, 8>(x, q, part, rows, n, k, splits, stream);
  else launch_gemm<W, 16>(x, q, part, rows, n, k, splits, stream);
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
  if (weights == GemvWeights::kInt8)
    launch_rows<GemvWeights::kInt8>(x, q, workspace, int(rows), int(n), int(k), splits, stream);
  else
    launch_rows<GemvWeights::kFp8E4M3>(x, q, workspace, int(rows), int(n), int(k), splits, stream);
  const int64_t total = rows * n;
  const int threads = 256;
  sum_parts_kernel<<<unsigned((total + threads - 1) / threads), threads, 0, stream>>>(
      workspace, scale, static_cast<__nv_bfloat16 *>(y), int(rows), int(n), splits);
  return cudaGetLastError();
}

}  // namespace personaplex::cuda
