#include "cuda/ring_attention_clustered.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/ring_slots.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kMaxWarps = 8;     // a block's warps: 8 alone, 4 in a cluster
constexpr int kMaxPerLane = 8;   // head elements a lane holds: head_dim <= 256
constexpr int kMaxChunks = 8;    // blocks sharing a (row, head): a portable cluster
constexpr int kChunkSlots = 32;  // slots a clustered block takes at least

// Slots whose key and value loads a warp issues together: fewer as a lane
// holds more of the head, so that they stay in registers.
template <int kPerLane>
constexpr int kSlotsPerLoad = kPerLane <= 2 ? 8 : kPerLane <= 4 ? 4 : 2;

// Shared memory of a block, floats: the rotated queries [T, D], each warp's
// softmax state [warps, T, D + 2] and the block's [T, D + 2].
size_t shared_floats(int queries, int head_dim) {
  return size_t(queries) * head_dim + size_t(kMaxWarps + 1) * queries * (head_dim + 2);
}

// A softmax over some of the slots is kept as a state [top score, sum of
// exp(score - top), the values weighted by exp(score - top) (D)]: states
// merge by scaling each to the largest top. One that saw no slot has top
// -inf and counts for nothing.
struct Merged {
  float top = -INFINITY, total = 0.0f, sum = 0.0f;
};

// Merges `count` states of one query, state(i) pointing at each, for
// element d.
template <typename State>
__device__ __forceinline__ Merged merge(int count, int d, State state) {
  Merged m;
  for (int i = 0; i < count; ++i) m.top = fmaxf(m.top, state(i)[0]);
  if (m.top == -INFINITY) return m;
  for (int i = 0; i < count; ++i) {
    const float *p = state(i);
    if (p[0] == -INFINITY) continue;
    const float c = expf(p[0] - m.top);
    m.total = fmaf(c, p[1], m.total);
    m.sum = fmaf(c, p[2 + d], m.sum);
  }
  return m;
}

// The attention of (row, head) over slots [lo, hi), left as each warp's
// softmax states in `states` [warps, T, D + 2]. A warp takes kSlots slots at
// a time, their keys and values loaded together, scores them against every
// query (lanes over the head) and folds them into its running softmax.
template <typename T, int kMaxQueries, int kPerLane>
__device__ void attend(const RingAttention &a, int row, int head, int64_t first, int lo, int hi, const float *q_s,
                       float *states) {
  constexpr int kSlots = kSlotsPerLoad<kPerLane>;
  const int D = a.head_dim, S = a.slots, Q = a.queries, warps = blockDim.x / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t cache = (size_t(row) * a.heads + head) * S * D;
  const T *keys = static_cast<const T *>(a.keys) + cache, *values = static_cast<const T *>(a.values) + cache;
  const int64_t end = first + Q;
  const int end_slot = int(end % S);
  const float scale = rsqrtf(float(D));
  float top[kMaxQueries], total[kMaxQueries], acc[kMaxQueries][kPerLane];
#pragma unroll
  for (int t = 0; t < kMaxQueries; ++t) {
    top[t] = -INFINITY, total[t] = 0.0f;
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) acc[t][e] = 0.0f;
  }
  for (int s0 = lo + warp * kSlots; s0 < hi; s0 += warps * kSlots) {
    float k[kSlots][kPerLane], v[kSlots][kPerLane];
    load_slots<T, kSlots, kPerLane>(keys, s0, hi, D, lane, k);
    load_slots<T, kSlots, kPerLane>(values, s0, hi, D, lane, v);
    int64_t label[kSlots];
#pragma unroll
    for (int i = 0; i < kSlots; ++i) label[i] = s0 + i < hi ? slot_label(s0 + i, end, end_slot, S) : -1;
#pragma unroll
    for (int t = 0; t < kMaxQueries; ++t) {
      if (t >= Q) break;
      float score[kSlots], best = top[t];
#pragma unroll
      for (int i = 0; i < kSlots; ++i) {
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e)
          if (lane + 32 * e < D) dot = fmaf(q_s[t * D + lane + 32 * e], k[i][e], dot);
        for (int off = 16; off > 0; off /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, off);
        score[i] = label[i] >= 0 && label[i] <= first + t ? dot * scale : -INFINITY;
        best = fmaxf(best, score[i]);
      }
      if (best == -INFINITY) continue;      // the same in every lane
      const float c = expf(top[t] - best);  // 0 while nothing was seen
      total[t] *= c;
#pragma unroll
      for (int e = 0; e < kPerLane; ++e) acc[t][e] *= c;
#pragma unroll
      for (int i = 0; i < kSlots; ++i) {
        const float p = expf(score[i] - best);  // 0 for the unseen slots
        total[t] += p;
#pragma unroll
        for (int e = 0; e < kPerLane; ++e) acc[t][e] = fmaf(p, v[i][e], acc[t][e]);
      }
      top[t] = best;
    }
  }
#pragma unroll
  for (int t = 0; t < kMaxQueries; ++t) {
    if (t >= Q) break;
    float *state = states + (warp * Q + t) * (D + 2);
    if (lane == 0) state[0] = top[t], state[1] = total[t];
#pragma unroll
    for (int e = 0; e < kPerLane; ++e)
      if (lane + 32 * e < D) state[2 + lane + 32 * e] = acc[t][e];
  }
}

// (row, head) = (blockIdx.y, blockIdx.x / blocks of a cluster). Alone
// (kClustered false) a block attends over every slot. In a cluster (compute
// 9.0+) block r takes the r-th run of chunk_slots slots, the blocks' states
// meet in distributed shared memory and each block writes a share of the
// output: at batch 1 a head is then read by several SMs instead of one.
template <typename T, int kMaxQueries, int kPerLane, bool kClustered>
__global__ void __launch_bounds__(kMaxWarps * 32) ring_attention_kernel(RingAttention a, int chunk_slots) {
  wait_for_previous();
  start_next();
  extern __shared__ float shared[];
  const int D = a.head_dim, Q = a.queries, warps = blockDim.x / 32, stride = D + 2;
  int chunks = 1, chunk = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  if constexpr (kClustered) chunks = int(cg::this_cluster().num_blocks()), chunk = int(cg::this_cluster().block_rank());
#else
  if constexpr (kClustered) __trap();  // launched on compute 9.0+ only
#endif
  const int head = blockIdx.x / chunks, row = blockIdx.y;
  const int lo = chunk * chunk_slots, hi = min(a.slots, lo + chunk_slots);
  float *q_s = shared, *states = q_s + Q * D, *block_state = states + kMaxWarps * Q * stride;
  const int64_t first = a.steps[a.steps_per_row ? row : 0];
  rotate_and_write<T>(a, row, head, first, lo, hi, q_s);
  __syncthreads();  // the keys just written are read below, by other threads
  attend<T, kMaxQueries, kPerLane>(a, row, head, first, lo, hi, q_s, states);
  __syncthreads();
  T *out = static_cast<T *>(a.out);
  const auto put = [&](int o, const Merged &m) {
    const int t = o / D, d = o % D;
    out[((size_t(row) * Q + t) * a.heads + head) * D + d] = from_float<T>(m.sum / m.total);
  };
  for (int o = threadIdx.x; o < Q * D; o += blockDim.x) {
    const int t = o / D, d = o % D;
    const Merged m = merge(warps, d, [&](int w) { return states + (w * Q + t) * stride; });
    if constexpr (kClustered) {
      if (d == 0) block_state[t * stride] = m.top, block_state[t * stride + 1] = m.total;
      block_state[t * stride + 2 + d] = m.sum;
    } else {
      put(o, m);
    }
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (kClustered) {
    cg::cluster_group cluster = cg::this_cluster();
    cluster.sync();  // every block's state written
    for (int o = chunk * blockDim.x + threadIdx.x; o < Q * D; o += chunks * blockDim.x) {
      const int t = o / D, d = o % D;
      put(o, merge(chunks, d, [&](int r) { return cluster.map_shared_rank(block_state, r) + t * stride; }));
    }
    cluster.sync();  // no block leaves while another reads its state
  }
#endif
}

// The queries' states and a lane's head elements stay in registers: their
// counts are constants.
template <typename T, int kPerLane, bool kClustered>
cudaError_t launch_lanes(const RingAttention &a, dim3 grid, dim3 block, unsigned chunks, int chunk_slots,
                         cudaStream_t stream) {
  const size_t bytes = shared_floats(a.queries, a.head_dim) * sizeof(float);
  auto kernel = ring_attention_kernel<T, 8, kPerLane, kClustered>;
  if (a.queries <= 2)
    kernel = ring_attention_kernel<T, 2, kPerLane, kClustered>;
  else if (a.queries <= 4)
    kernel = ring_attention_kernel<T, 4, kPerLane, kClustered>;
  return launch_chained_clusters(kernel, grid, block, bytes, stream, chunks, a, chunk_slots);
}

template <typename T, bool kClustered>
cudaError_t launch(const RingAttention &a, dim3 grid, dim3 block, unsigned chunks, int chunk_slots,
                   cudaStream_t stream) {
  if (a.head_dim <= 32) return launch_lanes<T, 1, kClustered>(a, grid, block, chunks, chunk_slots, stream);
  if (a.head_dim <= 64) return launch_lanes<T, 2, kClustered>(a, grid, block, chunks, chunk_slots, stream);
  if (a.head_dim <= 128) return launch_lanes<T, 4, kClustered>(a, grid, block, chunks, chunk_slots, stream);
  return launch_lanes<T, 8, kClustered>(a, grid, block, chunks, chunk_slots, stream);
}

// Blocks a (row, head) is split over: several when the device has clusters
// and a block per (row, head) would leave most of its SMs idle (batch 1:
// Mimi's 8 heads on 132 SMs), each taking kChunkSlots slots or more.
unsigned chunks_for(const RingAttention &a) {
  int device = 0, major = 0, sms = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
    return 1;
  if (major < 9 || int64_t(a.rows) * a.heads >= sms) return 1;
  return unsigned(std::min(kMaxChunks, (a.slots + kChunkSlots - 1) / kChunkSlots));
}

}  // namespace

cudaError_t ring_attention_clustered(const RingAttention &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.rows > 65535 || !a.steps || a.queries < 1 || a.queries > 8 ||
      a.queries >= a.slots || a.head_dim <= 0 || a.head_dim % 2 != 0 || a.head_dim > 32 * kMaxPerLane ||
      shared_floats(a.queries, a.head_dim) * sizeof(float) > 48 * 1024)
    return cudaErrorInvalidValue;
  const bool bf16 = a.floats == Floats::kBFloat16;
  const unsigned chunks = chunks_for(a);
  if (chunks == 1) {
    const dim3 grid(a.heads, a.rows), block(kMaxWarps * 32);
    return bf16 ? launch<__nv_bfloat16, false>(a, grid, block, 1, a.slots, stream)
                : launch<float, false>(a, grid, block, 1, a.slots, stream);
  }
  const int chunk_slots = (a.slots + int(chunks) - 1) / int(chunks);
  const dim3 grid(a.heads * chunks, a.rows), block(kMaxWarps / 2 * 32);
  return bf16 ? launch<__nv_bfloat16, true>(a, grid, block, chunks, chunk_slots, stream)
              : launch<float, true>(a, grid, block, chunks, chunk_slots, stream);
}

}  // namespace personaplex::cuda
