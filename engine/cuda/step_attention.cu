#include "cuda/step_attention.h"

#include <cuda_bf16.h>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kMaxSharedBytes = 48 * 1024;
constexpr int kThreads = 128;

// One block per (row, head). The window's earlier keys and values and the
// step's own (written to the cache on the way) go to shared memory, every
// load in flight at once; then a warp per slot scores it, and each thread
// takes elements of the weighted sum, in fp32.
template <typename T>
__global__ void __launch_bounds__(kThreads) step_attention_kernel(StepAttention a) {
  wait_for_previous();
  start_next();
  extern __shared__ float window[];  // keys [n, D], values [n, D], query [D], scores [n]
  const int head = blockIdx.x, row = blockIdx.y, D = a.head_dim;
  const int n = a.slot - a.first + 1, earlier = (n - 1) * D;
  float *keys_s = window, *values_s = window + n * D, *q_s = window + 2 * n * D, *scores = q_s + D;
  const T *q = static_cast<const T *>(a.qkv) + size_t(row) * 3 * a.heads * D + size_t(head) * D;
  const T *k_new = q + size_t(a.heads) * D, *v_new = k_new + size_t(a.heads) * D;
  const size_t cache = (size_t(row) * a.heads + head) * a.slots * D;
  T *keys = static_cast<T *>(a.keys) + cache, *values = static_cast<T *>(a.values) + cache;
  const T *old_keys = keys + size_t(a.first) * D, *old_values = values + size_t(a.first) * D;
  for (int i = threadIdx.x; i < earlier; i += kThreads) {
    keys_s[i] = to_float(old_keys[i]);
    values_s[i] = to_float(old_values[i]);
  }
  for (int d = threadIdx.x; d < D; d += kThreads) {
    const T k = k_new[d], v = v_new[d];
    keys[size_t(a.slot) * D + d] = k;
    values[size_t(a.slot) * D + d] = v;
    keys_s[earlier + d] = to_float(k);
    values_s[earlier + d] = to_float(v);
    q_s[d] = to_float(q[d]);
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float scale = rsqrtf(float(D));
  for (int s = warp; s < n; s += kThreads / 32) {
    float score = 0.0f;
    for (int d = lane; d < D; d += 32) score = fmaf(q_s[d], keys_s[s * D + d], score);
    for (int off = 16; off > 0; off /= 2) score += __shfl_xor_sync(0xffffffffu, score, off);
    if (lane == 0) scores[s] = score * scale;
  }
  __syncthreads();
  float top = -INFINITY;
  for (int s = 0; s < n; ++s) top = fmaxf(top, scores[s]);
  float total = 0.0f;
  for (int s = 0; s < n; ++s) total += expf(scores[s] - top);
  T *out = static_cast<T *>(a.out) + (size_t(row) * a.heads + head) * D;
  for (int d = threadIdx.x; d < D; d += kThreads) {
    float acc = 0.0f;
    for (int s = 0; s < n; ++s) acc = fmaf(expf(scores[s] - top), values_s[s * D + d], acc);
    out[d] = from_float<T>(acc / total);
  }
}

size_t shared_bytes(int head_dim, int n) { return (size_t(2) * n * head_dim + head_dim + n) * sizeof(float); }

}  // namespace

bool step_attention_fits(int head_dim, int slots, int slot, int first) {
  return head_dim > 0 && slot >= 0 && slot < slots && first >= 0 && first <= slot &&
         shared_bytes(head_dim, slot - first + 1) <= size_t(kMaxSharedBytes);
}

cudaError_t step_attention(const StepAttention &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || a.rows > 65535 || !step_attention_fits(a.head_dim, a.slots, a.slot, a.first))
    return cudaErrorInvalidValue;
  const dim3 grid(a.heads, a.rows);
  const size_t bytes = shared_bytes(a.head_dim, a.slot - a.first + 1);
  if (a.floats == Floats::kBFloat16)
    return launch_chained(step_attention_kernel<__nv_bfloat16>, grid, dim3(kThreads), bytes, stream, a);
  return launch_chained(step_attention_kernel<float>, grid, dim3(kThreads), bytes, stream, a);
}

}  // namespace personaplex::cuda
