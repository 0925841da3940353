#include "cuda/decode_attention.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/chained_launch.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kLanes = 32;
constexpr int kBytesInFlight = 128;  // of keys and values a lane loads before using them
constexpr int kMinSlotsPerSplit = 64;
constexpr int kTargetBlocks = 1024;  // enough warps in flight to keep the memory busy
constexpr float kLog2e = 1.4426950408889634f;

// How a lane holds its part of one key or value: E consecutive elements,
// loaded in 16-byte words and kept packed until used (so that every load of
// a pass is in flight at once), then widened to fp32 in registers. Wider
// parts mean fewer lanes per key, so fewer shuffles, exponentials and flag
// loads per key: the kernel issues fewer instructions per byte read.
template <typename KV>
struct Part;
template <>
struct Part<__nv_bfloat16> {
  static constexpr int E = 16;
  uint4 w[2];
};
template <>
struct Part<float> {
  static constexpr int E = 8;
  uint4 w[2];
};
template <>
struct Part<uint8_t> {
  static constexpr int E = 16;
  uint4 w[1];
};

template <typename KV>
__device__ __forceinline__ Part<KV> load_part(const KV *p) {
  Part<KV> r;
  constexpr int kWords = sizeof(r.w) / sizeof(uint4);
#pragma unroll
  for (int i = 0; i < kWords; ++i) r.w[i] = reinterpret_cast<const uint4 *>(p)[i];
  return r;
}

__device__ __forceinline__ void widen_word(uint32_t w, __nv_bfloat16, float *out) {
  __nv_bfloat162 pair;
  *reinterpret_cast<uint32_t *>(&pair) = w;
  const float2 f = __bfloat1622float2(pair);
  out[0] = f.x, out[1] = f.y;
}
__device__ __forceinline__ void widen_word(uint32_t w, float, float *out) { out[0] = __uint_as_float(w); }
// e4m3 pairs through the hardware's conversion (moving the bits into fp32s
// with integer instructions instead measured 1.5x slower on an H200).
__device__ __forceinline__ void widen_word(uint32_t w, uint8_t, float *out) {
  const float2 lo = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(w & 0xffff), __NV_E4M3)));
  const float2 hi = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(__nv_fp8x2_storage_t(w >> 16), __NV_E4M3)));
  out[0] = lo.x, out[1] = lo.y, out[2] = hi.x, out[3] = hi.y;
}

template <typename KV>
__device__ __forceinline__ void widen(const Part<KV> &r, float *out) {
  constexpr int kWords = sizeof(r.w) / sizeof(uint32_t), kPer = Part<KV>::E / kWords;
  const uint32_t *words = reinterpret_cast<const uint32_t *>(r.w);
#pragma unroll
  for (int j = 0; j < kWords; ++j) widen_word(words[j], KV(), out + j * kPer);
}

// E elements of a query (bf16 or fp32) as floats.
template <typename T, int E>
__device__ __forceinline__ void load_query(const T *p, float *out) {
#pragma unroll
  for (int i = 0; i < E; i += 8) {
    if constexpr (sizeof(T) == 2) {
      const uint4 w = *reinterpret_cast<const uint4 *>(p + i);
      const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) widen_word(words[j], __nv_bfloat16(), out + i + 2 * j);
    } else {
#pragma unroll
      for (int j = 0; j < 8; ++j) out[i + j] = p[i + j];
    }
  }
}

__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16(v); }

// Running softmax state of one lane group (base-2 exponents: the query is
// scaled by log2(e) / sqrt(D)). m: the largest score so far, l: the sum of
// 2^(score - m), acc: the values weighted the same, E dims per lane.
template <int E>
struct Running {
  float m = -INFINITY, l = 0.0f, acc[E] = {};

  // The sums are rescaled only when the maximum grows (rarely, past the
  // first keys): one product per value otherwise.
  __device__ __forceinline__ void add(float score, float value_scale, const float *v) {
    if (score > m) {
      const float c = exp2f(m - score);
      l *= c;
#pragma unroll
      for (int i = 0; i < E; ++i) acc[i] *= c;
      m = score;
    }
    const float p = exp2f(score - m);
    l += p;
    const float pv = p * value_scale;
#pragma unroll
    for (int i = 0; i < E; ++i) acc[i] = fmaf(pv, v[i], acc[i]);
  }
};

// Block (split, head, row): its 4 warps walk the split's slots, a group of
// D/E lanes per key (E dims each), kUnroll keys per group at a time. Each
// group keeps a running softmax; the block merges its groups in shared
// memory and writes the result (one split) or its part (several).
template <typename T, typename KV, int D>
__global__ void __launch_bounds__(kWarps *kLanes) attend_kernel(DecodeAttention a, int splits) {
  wait_for_previous();
  start_next();
  constexpr int E = Part<KV>::E < D ? Part<KV>::E : D;
  static_assert(Part<KV>::E <= D, "a lane's part is at most a head");
  constexpr int L = D / E, G = kLanes / L, kGroups = kWarps * G;
  constexpr int kUnroll = kBytesInFlight / (2 * int(sizeof(Part<KV>::w)));
  constexpr int kStride = kGroups * kUnroll;
  const int split = blockIdx.x, head = blockIdx.y, row = blockIdx.z;
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int group = lane / L, part = lane % L, gi = warp * G + group;
  const int per = (a.span + splits - 1) / splits;
  const int begin = split * per, end = min(min(a.span, begin + per), a.filled ? a.filled[row] : a.span);
  const size_t rh = size_t(row) * a.heads + head;

  const float qscale = rsqrtf(float(D)) * kLog2e;
  float q[E], qp[E];
  load_query<T, E>(static_cast<const T *>(a.q) + rh * D + part * E, q);
  const bool row_split = a.q_pin != nullptr && a.split != nullptr && a.split[row];
  if (row_split) load_query<T, E>(static_cast<const T *>(a.q_pin) + rh * D + part * E, qp);
#pragma unroll
  for (int i = 0; i < E; ++i) {
    q[i] *= qscale;
    qp[i] = row_split ? qp[i] * qscale : 0.0f;
  }
  const bool *written = a.written + size_t(row) * a.allocated;
  const bool *pinned = a.pinned ? a.pinned + size_t(row) * a.allocated : nullptr;
  const KV *keys = static_cast<const KV *>(a.keys) + rh * a.allocated * D + part * E;
  const KV *values = static_cast<const KV *>(a.values) + rh * a.allocated * D + part * E;
  const float *key_scales = a.key_scales ? a.key_scales + rh * a.allocated : nullptr;
  const float *value_scales = a.value_scales ? a.value_scales + rh * a.allocated : nullptr;

  Running<E> run;
  // Each pass: every group loads kUnroll keys, values, flags and scales
  // (none waiting on another), then scores and adds them in order.
  for (int first = begin + gi; first - gi < end; first += kStride) {
    Part<KV> kr[kUnroll], vr[kUnroll];
    bool ok[kUnroll], pin[kUnroll];
    float ks[kUnroll], vs[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int s = first + u * kGroups;
      ok[u] = false;
      if (s < end) {
        kr[u] = load_part(keys + size_t(s) * D);
        vr[u] = load_part(values + size_t(s) * D);
        ks[u] = key_scales ? key_scales[s] : 1.0f;
        vs[u] = value_scales ? value_scales[s] : 1.0f;
        ok[u] = written[s];
        pin[u] = row_split && pinned != nullptr && s < a.pinned_span && pinned[s];
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      float k[E];
      widen(kr[u], k);
      float dot = 0.0f, dot_pin = 0.0f;
#pragma unroll
      for (int i = 0; i < E; ++i) dot = fmaf(q[i], k[i], dot);
      if (row_split)
#pragma unroll
        for (int i = 0; i < E; ++i) dot_pin = fmaf(qp[i], k[i], dot_pin);
#pragma unroll
      for (int off = L / 2; off > 0; off /= 2) {
        dot += __shfl_xor_sync(0xffffffffu, dot, off);
        if (row_split) dot_pin += __shfl_xor_sync(0xffffffffu, dot_pin, off);
      }
      if (ok[u]) {
        float v[E];
        widen(vr[u], v);
        run.add((pin[u] ? dot_pin : dot) * ks[u], vs[u], v);
      }
    }
  }

  __shared__ float sm_m[kGroups], sm_l[kGroups], sm_acc[kGroups][D];
  if (part == 0) {
    sm_m[gi] = run.m;
    sm_l[gi] = run.l;
  }
#pragma unroll
  for (int i = 0; i < E; ++i) sm_acc[gi][part * E + i] = run.acc[i];
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += kWarps * kLanes) {
    float m = -INFINITY;
    for (int g = 0; g < kGroups; ++g) m = fmaxf(m, sm_m[g]);
    float sum = 0.0f, out = 0.0f;
    if (m != -INFINITY)
      for (int g = 0; g < kGroups; ++g) {
        if (sm_m[g] == -INFINITY) continue;
        const float w = exp2f(sm_m[g] - m);
        sum += sm_l[g] * w;
        out += sm_acc[g][d] * w;
      }
    if (splits == 1) {
      store(static_cast<T *>(a.out) + rh * D + d, sum > 0.0f ? out / sum : 0.0f);
    } else {
      float *part_out = a.workspace + (rh * splits + split) * (D + 2);
      part_out[d] = out;
      if (d == 0) {
        part_out[D] = m;
        part_out[D + 1] = sum;
      }
    }
  }
}

// Block (head, row), a thread per dim: the splits' parts merged.
template <typename T, int D>
__global__ void merge_kernel(DecodeAttention a, int splits) {
  wait_for_previous();
  start_next();
  const size_t rh = size_t(blockIdx.y) * a.heads + blockIdx.x;
  const float *parts = a.workspace + rh * splits * (D + 2);
  const int d = threadIdx.x;
  float m = -INFINITY;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, parts[s * (D + 2) + D]);
  float sum = 0.0f, out = 0.0f;
  if (m != -INFINITY)
    for (int s = 0; s < splits; ++s) {
      const float ms = parts[s * (D + 2) + D];
      if (ms == -INFINITY) continue;
      const float w = exp2f(ms - m);
      sum += parts[s * (D + 2) + D + 1] * w;
      out += parts[s * (D + 2) + d] * w;
    }
  store(static_cast<T *>(a.out) + rh * D + d, sum > 0.0f ? out / sum : 0.0f);
}

template <typename T, typename KV, int D>
cudaError_t launch(const DecodeAttention &a, cudaStream_t stream) {
  const int splits = decode_attention_splits(a.rows, a.heads, a.span);
  const cudaError_t e =
      launch_chained(attend_kernel<T, KV, D>, dim3(splits, a.heads, a.rows), dim3(kWarps * kLanes), 0, stream, a, splits);
  if (e != cudaSuccess || splits == 1) return e;
  return launch_chained(merge_kernel<T, D>, dim3(a.heads, a.rows), dim3(D), 0, stream, a, splits);
}

template <typename T, typename KV>
cudaError_t launch_dim(const DecodeAttention &a, cudaStream_t stream) {
  switch (a.head_dim) {
    case 16: return launch<T, KV, 16>(a, stream);
    case 32: return launch<T, KV, 32>(a, stream);
    case 64: return launch<T, KV, 64>(a, stream);
    case 128: return launch<T, KV, 128>(a, stream);
    case 256: return launch<T, KV, 256>(a, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

bool decode_attention_fits(int head_dim, int span, int allocated) {
  const bool dim_ok = head_dim == 16 || head_dim == 32 || head_dim == 64 || head_dim == 128 || head_dim == 256;
  return dim_ok && span >= 1 && span <= allocated;
}

int decode_attention_splits(int rows, int heads, int span) {
  const int blocks = rows * heads;
  const int want = (kTargetBlocks + blocks - 1) / blocks;
  const int most = (span + kMinSlotsPerSplit - 1) / kMinSlotsPerSplit;
  return want < most ? want : (most > 0 ? most : 1);
}

size_t decode_attention_workspace(int rows, int heads, int head_dim, int span) {
  const int splits = decode_attention_splits(rows, heads, span);
  return splits > 1 ? size_t(rows) * heads * splits * (head_dim + 2) : 0;
}

cudaError_t decode_attention(const DecodeAttention &a, cudaStream_t stream) {
  if (a.rows <= 0 || a.heads <= 0 || !decode_attention_fits(a.head_dim, a.span, a.allocated))
    return cudaErrorInvalidValue;
  if (decode_attention_splits(a.rows, a.heads, a.span) > 1 && a.workspace == nullptr) return cudaErrorInvalidValue;
  if (a.floats == AttentionFloats::kBFloat16)
    return a.fp8 ? launch_dim<__nv_bfloat16, uint8_t>(a, stream) : launch_dim<__nv_bfloat16, __nv_bfloat16>(a, stream);
  return a.fp8 ? launch_dim<float, uint8_t>(a, stream) : launch_dim<float, float>(a, stream);
}

}  // namespace personaplex::cuda
