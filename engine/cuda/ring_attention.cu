#include "cuda/ring_attention.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/ring_attention_clustered.h"
#include "cuda/ring_slots.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 256;

constexpr int kWarps = kThreads / 32;
constexpr int kMaxPerLane = 8;  // head elements a lane holds: head_dim <= 256
constexpr int kSlots = 8;       // slots whose loads a warp issues together

// Shared memory of a block, floats: the rotated queries [T, D], the softmax
// weights [T, slots] and totals [T], each warp's weighted sums [warps, T, D].
size_t shared_floats(int queries, int head_dim, int slots) {
  return size_t(queries) * (head_dim + slots + 1) + size_t(kWarps) * queries * head_dim;
}

// One block per (row, head); at batch 1 there are few blocks, so each warp
// keeps several slots' loads in flight. After the rotation and the writes,
// a warp per slot scores it against every query (lanes over the head), a
// warp per query takes the softmax, and each warp sums the weighted values
// of its slots (lanes over the head), the warps' sums added at the end.
template <typename T, int kMaxQueries, int kPerLane>
__global__ void __launch_bounds__(kThreads) ring_attention_kernel(RingAttention a) {
  wait_for_previous();
  start_next();
  extern __shared__ float shared[];
  const int head = blockIdx.x, row = blockIdx.y, D = a.head_dim, S = a.slots, Q = a.queries;
  float *q_s = shared, *weights = q_s + Q * D, *totals = weights + Q * S, *partial = totals + Q;
  const int64_t first = a.steps[a.steps_per_row ? row : 0], end = first + Q;
  const int end_slot = int(end % S);
  rotate_and_write<T>(a, row, head, first, 0, S, q_s);
  __syncthreads();  // the keys just written are read below, by other threads

  const size_t cache = (size_t(row) * a.heads + head) * S * D;
  const T *keys = static_cast<const T *>(a.keys) + cache, *values = static_cast<const T *>(a.values) + cache;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float scale = rsqrtf(float(D));
  // kSlots slots a warp at a time, their loads issued together.
  for (int s0 = warp * kSlots; s0 < S; s0 += kWarps * kSlots) {
    float k[kSlots][kPerLane];
    load_slots<T, kSlots, kPerLane>(keys, s0, S, D, lane, k);
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      const int s = s0 + i;
      const int64_t label = s < S ? slot_label(s, end, end_slot, S) : -1;
#pragma unroll
      for (int t = 0; t < kMaxQueries; ++t)
        if (t < Q) {
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < kPerLane; ++e) {
            const int d = lane + 32 * e;
            if (d < D) dot = fmaf(q_s[t * D + d], k[i][e], dot);
          }
          for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
          const bool seen = label >= 0 && label <= first + t;
          if (lane == 0 && s < S) weights[t * S + s] = seen ? dot * scale : -INFINITY;
        }
    }
  }
  __syncthreads();
  for (int t = warp; t < Q; t += kWarps) {
    float *w = weights + t * S;
    float top = -INFINITY;
    for (int s = lane; s < S; s += 32) top = fmaxf(top, w[s]);
    for (int off = 16; off > 0; off /= 2) top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, off));
    float total = 0.0f;
    for (int s = lane; s < S; s += 32) {
      const float e = expf(w[s] - top);  // 0 for the unseen slots
      w[s] = e;
      total += e;
    }
    for (int off = 16; off > 0; off /= 2) total += __shfl_xor_sync(0xffffffffu, total, off);
    if (lane == 0) totals[t] = total;
  }
  __syncthreads();
  float acc[kMaxQueries][kPerLane] = {};
  for (int s0 = warp * kSlots; s0 < S; s0 += kWarps * kSlots) {
    float v[kSlots][kPerLane];
    load_slots<T, kSlots, kPerLane>(values, s0, S, D, lane, v);
#pragma unroll
    for (int i = 0; i < kSlots; ++i)
#pragma unroll
      for (int t = 0; t < kMaxQueries; ++t)
        if (t < Q && s0 + i < S) {
          const float p = weights[t * S + s0 + i];
#pragma unroll
          for (int e = 0; e < kPerLane; ++e) acc[t][e] = fmaf(p, v[i][e], acc[t][e]);
        }
  }
#pragma unroll
  for (int t = 0; t < kMaxQueries; ++t)
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int d = lane + 32 * e;
      if (t < Q && d < D) partial[(warp * Q + t) * D + d] = acc[t][e];
    }
  __syncthreads();
  T *out = static_cast<T *>(a.out);
  for (int o = threadIdx.x; o < Q * D; o += kThreads) {
    float sum = 0.0f;
    for (int w = 0; w < kWarps; ++w) sum += partial[w * Q * D + o];
    const int t = o / D, d = o % D;
    out[((size_t(row) * Q + t) * a.heads + head) * D + d] = from_float<T>(sum / totals[t]);
  }
}

// The queries' sums and a lane's head elements stay in registers: their
// counts are constants.
template <typename T, int kPerLane>
cudaError_t launch_lane(const RingAttention &a, dim3 grid, size_t bytes, cudaStream_t stream) {
  if (a.queries <= 2)
    return launch_chained(ring_attention_kernel<T, 2, kPerLane>, grid, dim3(kThreads), bytes, stream, a);
  if (a.queries <= 4)
    return launch_chained(ring_attention_kernel<T, 4, kPerLane>, grid, dim3(kThreads), bytes, stream, a);
  return launch_chained(ring_attention_kernel<T, 8, kPerLane>, grid, dim3(kThreads), bytes, stream, a);
}

template <typename T>
cudaError_t launch(const RingAttention &a, dim3 grid, size_t bytes, cudaStream_t stream) {
  if (a.head_dim <= 32) return launch_lane<T, 1>(a, grid, bytes, stream);
  if (a.head_dim <= 64) return launch_lane<T, 2>(a, grid, bytes, stream);
  if (a.head_dim <= 128) return launch_lane<T, 4>(a, grid, bytes, stream);
  return launch_lane<T, 8>(a, grid, bytes, stream);
}

}  // namespace

bool ring_attention_fits(int queries, int head_dim, int slots, Floats floats) {
  (void)floats;
  return queries >= 1 && queries <= 8 && queries < slots && head_dim > 0 && head_dim % 2 == 0 &&
         head_dim <= 32 * kMaxPerLane && shared_floats(queries, head_dim, slots) * sizeof(float) <= 48 * 1024;
}

cudaError_t ring_attention(const RingAttention &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.rows > 65535 || !a.steps ||
      !ring_attention_fits(a.queries, a.head_dim, a.slots, a.floats))
    return cudaErrorInvalidValue;
  if (a.clusters) return ring_attention_clustered(a, stream);
  const dim3 grid(a.heads, a.rows);
  const size_t bytes = shared_floats(a.queries, a.head_dim, a.slots) * sizeof(float);
  if (a.floats == Floats::kBFloat16) return launch<__nv_bfloat16>(a, grid, bytes, stream);
  return launch<float>(a, grid, bytes, stream);
}

}  // namespace personaplex::cuda
