#include "cuda/ring_attention.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kMaxSharedBytes = 48 * 1024;
constexpr int kThreads = 128;

// The step a slot holds once `end` steps are written (see the header); -1
// when none is there yet.
__device__ __forceinline__ int64_t slot_label(int s, int64_t end, int slots) {
  if (s >= end) return -1;
  const int64_t delta = s - end % slots;
  return delta <= 0 ? end + delta : end + delta - slots;
}

// Rotates the queries and keys of (row, head), writes keys and values to
// their slots and keeps the rotated queries (rounded to T, as the reference
// rounds them) in shared memory. Products and sums rounded one by one, as
// rotary.cu does.
template <typename T>
__device__ void rotate_and_write(const RingAttention &a, int row, int head, int64_t first, float *q_s) {
  const int D = a.head_dim, H = a.heads, pairs = D / 2;
  T *keys = static_cast<T *>(a.keys) + (size_t(row) * H + head) * a.slots * D;
  T *values = static_cast<T *>(a.values) + (size_t(row) * H + head) * a.slots * D;
  for (int i = threadIdx.x; i < a.queries * pairs; i += blockDim.x) {
    const int t = i / pairs, p = i % pairs;
    const int64_t step = first + t;
    const T *q = static_cast<const T *>(a.qkv) + ((size_t(row) * a.queries + t) * 3 * H + head) * D + 2 * p;
    const T *k = q + size_t(H) * D, *v = k + size_t(H) * D;
    float qr = to_float(q[0]), qi = to_float(q[1]), kr = to_float(k[0]), ki = to_float(k[1]);
    if (a.frequencies) {
      const float angle = __fmul_rn(float(step), a.frequencies[p]);
      const float c = cosf(angle), s = sinf(angle);
      const float q0 = __fsub_rn(__fmul_rn(qr, c), __fmul_rn(qi, s));
      const float q1 = __fadd_rn(__fmul_rn(qr, s), __fmul_rn(qi, c));
      const float k0 = __fsub_rn(__fmul_rn(kr, c), __fmul_rn(ki, s));
      const float k1 = __fadd_rn(__fmul_rn(kr, s), __fmul_rn(ki, c));
      qr = q0, qi = q1, kr = k0, ki = k1;
    }
    q_s[t * D + 2 * p] = to_float(from_float<T>(qr));
    q_s[t * D + 2 * p + 1] = to_float(from_float<T>(qi));
    const size_t at = size_t(step % a.slots) * D + 2 * p;
    keys[at] = from_float<T>(kr);
    keys[at + 1] = from_float<T>(ki);
    values[at] = v[0];
    values[at + 1] = v[1];
  }
}

// One block per (row, head): the rotation and the writes, then a thread per
// slot scores it against every query (its key read once), a warp per query
// takes the softmax, and each thread sums elements of the weighted values,
// all in fp32.
template <typename T, int kMaxQueries>
__global__ void __launch_bounds__(kThreads) ring_attention_kernel(RingAttention a) {
  wait_for_previous();
  start_next();
  extern __shared__ float shared[];  // queries [T, D], weights [T, slots], totals [T]
  const int head = blockIdx.x, row = blockIdx.y, D = a.head_dim, S = a.slots, Q = a.queries;
  float *q_s = shared, *weights = shared + Q * D, *totals = weights + Q * S;
  const int64_t first = a.steps[a.steps_per_row ? row : 0], end = first + Q;
  rotate_and_write<T>(a, row, head, first, q_s);
  __syncthreads();  // the keys just written are read below, by other threads

  const size_t cache = (size_t(row) * a.heads + head) * S * D;
  const T *keys = static_cast<const T *>(a.keys) + cache, *values = static_cast<const T *>(a.values) + cache;
  const float scale = rsqrtf(float(D));
  constexpr int N = kPerLoad<T>;
  for (int s = threadIdx.x; s < S; s += blockDim.x) {
    const int64_t label = slot_label(s, end, S);
    float dots[kMaxQueries] = {};
    for (int d = 0; d < D; d += N) {
      float k[N];
      load16(keys + size_t(s) * D + d, k);
#pragma unroll
      for (int t = 0; t < kMaxQueries; ++t)
        if (t < Q) {
#pragma unroll
          for (int e = 0; e < N; ++e) dots[t] = fmaf(q_s[t * D + d + e], k[e], dots[t]);
        }
    }
#pragma unroll
    for (int t = 0; t < kMaxQueries; ++t)
      if (t < Q) {
        const bool seen = label >= 0 && label <= first + t;
        weights[t * S + s] = seen ? dots[t] * scale : -INFINITY;
      }
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int t = warp; t < Q; t += kThreads / 32) {
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
  T *out = static_cast<T *>(a.out);
  for (int i = threadIdx.x; i < Q * D; i += blockDim.x) {
    const int t = i / D, d = i % D;
    const float *w = weights + t * S;
    float acc = 0.0f;
    for (int s = 0; s < S; ++s) acc = fmaf(w[s], to_float(values[size_t(s) * D + d]), acc);
    out[((size_t(row) * Q + t) * a.heads + head) * D + d] = from_float<T>(acc / totals[t]);
  }
}

size_t shared_bytes(int queries, int head_dim, int slots) {
  return size_t(queries) * (head_dim + slots + 1) * sizeof(float);
}

// The queries' dot products stay in registers: their count is a constant.
template <typename T>
cudaError_t launch(const RingAttention &a, dim3 grid, size_t bytes, cudaStream_t stream) {
  if (a.queries <= 2) return launch_chained(ring_attention_kernel<T, 2>, grid, dim3(kThreads), bytes, stream, a);
  if (a.queries <= 4) return launch_chained(ring_attention_kernel<T, 4>, grid, dim3(kThreads), bytes, stream, a);
  return launch_chained(ring_attention_kernel<T, 8>, grid, dim3(kThreads), bytes, stream, a);
}

}  // namespace

bool ring_attention_fits(int queries, int head_dim, int slots, Floats floats) {
  const int per_load = floats == Floats::kBFloat16 ? 8 : 4;
  return queries >= 1 && queries <= 8 && queries < slots && head_dim > 0 && head_dim % per_load == 0 &&
         shared_bytes(queries, head_dim, slots) <= size_t(kMaxSharedBytes);
}

cudaError_t ring_attention(const RingAttention &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.rows > 65535 || !a.steps ||
      !ring_attention_fits(a.queries, a.head_dim, a.slots, a.floats))
    return cudaErrorInvalidValue;
  const dim3 grid(a.heads, a.rows);
  const size_t bytes = shared_bytes(a.queries, a.head_dim, a.slots);
  if (a.floats == Floats::kBFloat16) return launch<__nv_bfloat16>(a, grid, bytes, stream);
  return launch<float>(a, grid, bytes, stream);
}

}  // namespace personaplex::cuda
