#include "cuda/residual_quantizer.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256, kWarps = kThreads / 32;
// A block ranks kChunk codebook vectors, each warp kCodesAtOnce of them with
// every load issued before the first product (at batch 1 few blocks run:
// latency, not bandwidth, is what they wait on).
constexpr int kCodesAtOnce = 2;
constexpr int kChunk = kWarps * kCodesAtOnce;
constexpr int kPerLane = 4;  // float4s a lane holds of one vector
constexpr int kMaxDim = 32 * 4 * kPerLane;

// The lower of two (distance, index) candidates: the smaller distance, the
// lower index on a tie.
__device__ __forceinline__ void keep_lower(float &best, int &index, float d, int i) {
  if (d < best || (d == best && i < index)) best = d, index = i;
}

__device__ __forceinline__ void warp_lower(float &best, int &index) {
  for (int off = 16; off > 0; off /= 2) {
    const float d = __shfl_xor_sync(0xffffffffu, best, off);
    const int i = __shfl_xor_sync(0xffffffffu, index, off);
    keep_lower(best, index, d, i);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Block (chunk, row): a warp per codebook vector of the chunk scores it,
// the block's nearest goes to the workspace; the row's last block to finish
// picks the nearest of all, writes its code and subtracts its vector.
__global__ void __launch_bounds__(kThreads) rvq_level_kernel(RvqLevel a) {
  const int row = blockIdx.y, chunk = blockIdx.x, chunks = gridDim.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  // The codebook is constant: its loads go out before the wait.
  const int c0 = chunk * kChunk + warp * kCodesAtOnce;
  float4 w[kCodesAtOnce][kPerLane];
  float norm[kCodesAtOnce];
#pragma unroll
  for (int u = 0; u < kCodesAtOnce; ++u) {
    const bool here = c0 + u < a.bins;
    const float *v = a.codebook + size_t(here ? c0 + u : 0) * a.dim;
    norm[u] = here ? a.norms[c0 + u] : 0.0f;
#pragma unroll
    for (int p = 0; p < kPerLane; ++p) {
      const int j = lane * 4 + p * 128;
      w[u][p] = here && j < a.dim ? *reinterpret_cast<const float4 *>(v + j) : make_float4(0, 0, 0, 0);
    }
  }
  wait_for_previous();
  start_next();
  extern __shared__ __align__(16) float x_s[];
  __shared__ float best_s[kWarps];
  __shared__ int index_s[kWarps];
  __shared__ bool last_s;
  float *residual = a.residual + size_t(row) * a.residual_stride;
  float squares = 0.0f;
  for (int j = threadIdx.x; j < a.dim; j += kThreads) {
    x_s[j] = residual[j];
    squares = fmaf(x_s[j], x_s[j], squares);
  }
  __shared__ float norm_parts[kWarps];
  squares = warp_sum(squares);
  if (lane == 0) norm_parts[warp] = squares;
  __syncthreads();
  float xx = 0.0f;
  for (int w = 0; w < kWarps; ++w) xx += norm_parts[w];

  float best = INFINITY;
  int index = 0x7fffffff;
#pragma unroll
  for (int u = 0; u < kCodesAtOnce; ++u) {
    float dot = 0.0f;
#pragma unroll
    for (int p = 0; p < kPerLane; ++p) {
      const int j = lane * 4 + p * 128;
      if (j < a.dim) {
        const float4 x = *reinterpret_cast<const float4 *>(x_s + j);
        dot = fmaf(x.x, w[u][p].x, dot);
        dot = fmaf(x.y, w[u][p].y, dot);
        dot = fmaf(x.z, w[u][p].z, dot);
        dot = fmaf(x.w, w[u][p].w, dot);
      }
    }
    dot = warp_sum(dot);
    if (c0 + u < a.bins) keep_lower(best, index, sqrtf(fmaxf(xx - 2.0f * dot + norm[u], 0.0f)), c0 + u);
  }
  warp_lower(best, index);
  if (lane == 0) best_s[warp] = best, index_s[warp] = index;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) keep_lower(best, index, best_s[w], index_s[w]);
    a.workspace[(size_t(row) * chunks + chunk) * 2] = best;
    a.workspace[(size_t(row) * chunks + chunk) * 2 + 1] = __int_as_float(index);
    __threadfence();
    last_s = atomicAdd(a.counters + row, 1u) == unsigned(chunks - 1);
  }
  __syncthreads();
  if (!last_s) return;
  __threadfence();
  if (warp == 0) {
    best = INFINITY, index = 0x7fffffff;
    const volatile float *candidates = a.workspace + size_t(row) * chunks * 2;
    for (int k = lane; k < chunks; k += 32) keep_lower(best, index, candidates[2 * k], __float_as_int(candidates[2 * k + 1]));
    warp_lower(best, index);
    if (lane == 0) {
      index_s[0] = index;
      a.codes[size_t(row / a.queries) * a.batch_stride + row % a.queries] = index;
      a.counters[row] = 0;
    }
  }
  __syncthreads();
  const float *chosen = a.codebook + size_t(index_s[0]) * a.dim;
  for (int j = threadIdx.x; j < a.dim; j += kThreads) residual[j] = x_s[j] - chosen[j];
}

// Block (outputs, row b*T+t): the groups' chosen vectors summed in shared
// memory (in level order, as the reference adds them), then a warp per
// output takes each group's projection of its sum.
template <typename T>
__global__ void __launch_bounds__(kThreads) rvq_decode_kernel(RvqDecode a) {
  wait_for_previous();
  start_next();
  extern __shared__ float sums[];  // [groups, dim]
  const int row = blockIdx.y, b = row / a.queries, t = row % a.queries;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int g = 0; g < a.group_count; ++g) {
    const RvqGroup &group = a.groups[g];
    for (int j = threadIdx.x; j < a.dim; j += kThreads) {
      float s = 0.0f;
#pragma unroll 8
      for (int k = 0; k < group.levels; ++k) {
        const int64_t code = a.codes[(size_t(b) * a.all_levels + group.first + k) * a.queries + t];
        const float v = group.codebooks[(size_t(k) * a.bins + code) * a.dim + j];
        s = k == 0 ? v : s + v;
      }
      sums[g * a.dim + j] = s;
    }
  }
  __syncthreads();
  const int per_block = (a.out_dim + gridDim.x - 1) / gridDim.x;
  const int first = blockIdx.x * per_block, last = min(a.out_dim, first + per_block);
  for (int o = first + warp; o < last; o += kWarps) {
    float total = 0.0f;
    for (int g = 0; g < a.group_count; ++g) {
      const float *p = a.groups[g].projection + size_t(o) * a.dim;
      float dot = 0.0f;
      for (int j = lane * 4; j < a.dim; j += 128) {
        const float4 w = *reinterpret_cast<const float4 *>(p + j);
        const float *s = sums + g * a.dim + j;
        dot = fmaf(s[0], w.x, dot);
        dot = fmaf(s[1], w.y, dot);
        dot = fmaf(s[2], w.z, dot);
        dot = fmaf(s[3], w.w, dot);
      }
      dot = warp_sum(dot);
      total = g == 0 ? dot : total + dot;
    }
    if (lane == 0) static_cast<T *>(a.out)[(size_t(b) * a.out_dim + o) * a.queries + t] = from_float<T>(total);
  }
}

}  // namespace

bool rvq_fits(int dim) { return dim > 0 && dim % 4 == 0 && dim <= kMaxDim; }

size_t rvq_workspace_floats(int rows, int bins) { return size_t(rows) * 2 * ((bins + kChunk - 1) / kChunk); }

cudaError_t rvq_level(const RvqLevel &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.rows > 65535 || a.bins <= 0 || a.queries <= 0 || !rvq_fits(a.dim) || !a.workspace ||
      !a.counters)
    return cudaErrorInvalidValue;
  const dim3 grid((a.bins + kChunk - 1) / kChunk, a.rows);
  return launch_chained(rvq_level_kernel, grid, dim3(kThreads), size_t(a.dim) * sizeof(float), stream, a);
}

cudaError_t rvq_decode(const RvqDecode &a, cudaStream_t stream) {
  const int rows = a.batch * a.queries;
  if (rows <= 0 || rows > 65535 || a.group_count < 1 || a.group_count > kRvqMaxGroups || !rvq_fits(a.dim) ||
      a.out_dim <= 0)
    return cudaErrorInvalidValue;
  // About a wave of blocks at one row; fewer outputs a block as rows grow.
  const int blocks = max(1, min((a.out_dim + kWarps - 1) / kWarps, 128 / rows));
  const dim3 grid(blocks, rows);
  const size_t bytes = size_t(a.group_count) * a.dim * sizeof(float);
  if (a.floats == Floats::kBFloat16)
    return launch_chained(rvq_decode_kernel<__nv_bfloat16>, grid, dim3(kThreads), bytes, stream, a);
  return launch_chained(rvq_decode_kernel<float>, grid, dim3(kThreads), bytes, stream, a);
}

}  // namespace personaplex::cuda
