#include "cuda/sample_top_k.h"

#include <climits>
#include <cstdint>

#include "cuda/chained_launch.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kBins = 2048;  // 11-bit digits: a 32-bit key in three passes
constexpr int kBinsPerThread = kBins / kThreads;

// A float's bits as an unsigned key in the float's order.
__device__ __forceinline__ uint32_t order_key(float f) {
  const uint32_t u = __float_as_uint(f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A candidate in the race: argmax keeps the first of equal scores.
struct Entry {
  float score;
  int rank;
  int token;
};

__device__ __forceinline__ bool ahead(const Entry &a, const Entry &b) {
  return a.score > b.score || (a.score == b.score && a.rank < b.rank);
}

__device__ Entry block_best(Entry e) {
  __shared__ Entry warps[kWarps];
  for (int off = 16; off > 0; off /= 2) {
    const Entry o{__shfl_xor_sync(0xffffffffu, e.score, off), __shfl_xor_sync(0xffffffffu, e.rank, off),
                  __shfl_xor_sync(0xffffffffu, e.token, off)};
    if (ahead(o, e)) e = o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warps[warp] = e;
  __syncthreads();
  e = warps[0];
  for (int w = 1; w < kWarps; ++w)
    if (ahead(warps[w], e)) e = warps[w];
  return e;
}

// Max (or sum) of every thread's value, on every thread.
template <bool Max>
__device__ float block_reduce(float v) {
  __shared__ float warps[kWarps];
  for (int off = 16; off > 0; off /= 2) {
    const float o = __shfl_xor_sync(0xffffffffu, v, off);
    v = Max ? fmaxf(v, o) : v + o;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // a previous call's readers are done
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  v = warps[0];
  for (int w = 1; w < kWarps; ++w) v = Max ? fmaxf(v, warps[w]) : v + warps[w];
  return v;
}

// The sum of the values of the threads before this one.
__device__ int exclusive_sum(int v) {
  __shared__ int warps[kWarps];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int x = v;
  for (int off = 1; off < 32; off *= 2) {
    const int y = __shfl_up_sync(0xffffffffu, x, off);
    if (lane >= off) x += y;
  }
  __syncthreads();
  if (lane == 31) warps[warp] = x;
  __syncthreads();
  int before = 0;
  for (int w = 0; w < warp; ++w) before += warps[w];
  return before + x - v;
}

// The key of the k-th largest logit, and how many logits with exactly that
// key are among the k: a radix select, most significant digit first, each
// pass counting only the keys that share the digits found so far.
struct Threshold {
  uint32_t key;
  int equal_taken;
};

__device__ Threshold kth_key(const float *l, int vocab, int k) {
  __shared__ int hist[kBins];
  __shared__ int found_digit, found_above;
  uint32_t prefix = 0, mask = 0;
  int remaining = k;
  for (int pass = 0; pass < 3; ++pass) {
    const int shift = pass == 0 ? 21 : pass == 1 ? 10 : 0;
    const uint32_t digits = pass == 2 ? 0x3ffu : 0x7ffu;
    for (int b = threadIdx.x; b < kBins; b += kThreads) hist[b] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < vocab; i += kThreads) {
      const uint32_t key = order_key(l[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & digits], 1);
    }
    __syncthreads();
    // Thread j holds bins kBins-1-4j downwards: counts from the top.
    int count[kBinsPerThread], total = 0;
#pragma unroll
    for (int q = 0; q < kBinsPerThread; ++q) total += count[q] = hist[kBins - 1 - (kBinsPerThread * threadIdx.x + q)];
    int above = exclusive_sum(total);
#pragma unroll
    for (int q = 0; q < kBinsPerThread; ++q) {
      if (above < remaining && above + count[q] >= remaining) {
        found_digit = kBins - 1 - (kBinsPerThread * threadIdx.x + q);
        found_above = above;
      }
      above += count[q];
    }
    __syncthreads();
    prefix |= uint32_t(found_digit) << shift;
    mask |= digits << shift;
    remaining -= found_above;
    __syncthreads();  // every thread has read them before the next pass
  }
  return {prefix, remaining};
}

// One block a row.
__global__ void __launch_bounds__(kThreads) sample_kernel(TopKSample a) {
  wait_for_previous();
  start_next();
  __shared__ float cand_p[kMaxTopK];
  __shared__ int cand_token[kMaxTopK];
  __shared__ int taken;
  const float *l = a.logits + size_t(blockIdx.x) * a.vocab;
  const bool all = a.k <= 0 || a.k >= a.vocab;
  const int race = all ? a.vocab : a.k;
  const float *noise = a.noise + size_t(blockIdx.x) * race;
  // Tempered as libtorch divides by a scalar (times its reciprocal), then
  // the softmax: exp(x - max) / sum.
  const float inv = __fdiv_rn(1.0f, a.temperature);
  float top = -INFINITY;
  for (int i = threadIdx.x; i < a.vocab; i += kThreads) top = fmaxf(top, l[i]);
  top = __fmul_rn(block_reduce<true>(top), inv);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < a.vocab; i += kThreads) sum += expf(__fmul_rn(l[i], inv) - top);
  sum = block_reduce<false>(sum);
  auto prob = [&](float logit) { return __fdiv_rn(expf(__fmul_rn(logit, inv) - top), sum); };

  Entry best{-INFINITY, INT_MAX, 0};
  if (all) {
    for (int i = threadIdx.x; i < a.vocab; i += kThreads) {
      const Entry e{__fdiv_rn(prob(l[i]), noise[i]), i, i};
      if (ahead(e, best)) best = e;
    }
  } else {
    const Threshold th = kth_key(l, a.vocab, a.k);
    // Every key above the threshold, and the first equal ones in token
    // order: each thread takes a contiguous span so that order is a scan.
    const int span = (a.vocab + kThreads - 1) / kThreads;
    const int begin = min(a.vocab, int(threadIdx.x) * span), end = min(a.vocab, begin + span);
    int equal = 0;
    for (int i = begin; i < end; ++i) equal += order_key(l[i]) == th.key;
    int before = exclusive_sum(equal);
    if (threadIdx.x == 0) taken = 0;
    __syncthreads();
    for (int i = begin; i < end; ++i) {
      const uint32_t key = order_key(l[i]);
      const bool take = key > th.key || (key == th.key && before++ < th.equal_taken);
      if (!take) continue;
      const int at = atomicAdd(&taken, 1);
      if (at >= a.k) break;  // exactly k by construction; never past the arrays
      cand_p[at] = prob(l[i]);
      cand_token[at] = i;
    }
    __syncthreads();
    // A candidate's place in token order picks its draw (as
    // sample_with_noise pairs them): a place no rounding of near-equal
    // probabilities can swap.
    for (int c = threadIdx.x; c < a.k; c += kThreads) {
      const float p = cand_p[c];
      const int token = cand_token[c];
      int rank = 0;
      for (int d = 0; d < a.k; ++d) rank += cand_token[d] < token;
      const Entry e{__fdiv_rn(p, noise[rank]), rank, token};
      if (ahead(e, best)) best = e;
    }
  }
  best = block_best(best);
  if (threadIdx.x == 0) a.out[blockIdx.x] = best.token;
}

}  // namespace

bool sample_top_k_fits(int64_t vocab, int64_t k) {
  return vocab >= 1 && vocab < (int64_t(1) << 31) && (k <= 0 || k >= vocab || k <= kMaxTopK);
}

cudaError_t sample_top_k(const TopKSample &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.rows > 0x7fffffff || !sample_top_k_fits(a.vocab, a.k) || !(a.temperature > 0.0f))
    return cudaErrorInvalidValue;
  return launch_chained(sample_kernel, dim3(unsigned(a.rows)), dim3(kThreads), 0, stream, a);
}

}  // namespace personaplex::cuda
