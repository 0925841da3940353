// What the ring attention kernels share: a slot's label, a step's rotation
// and writes, and slot loads (see ring_attention.h for the labelling).
#pragma once

#include <cstdint>

#include "cuda/float_io.cuh"
#include "cuda/ring_attention.h"

namespace personaplex::cuda {

// The step a slot holds once `end` steps are written; -1 when none is there
// yet. `end_slot` is end % slots.
__device__ __forceinline__ int64_t slot_label(int s, int64_t end, int end_slot, int slots) {
  if (s >= end) return -1;
  const int delta = s - end_slot;
  return delta <= 0 ? end + delta : end + delta - slots;
}

// Rotates the queries and keys of (row, head), keeps the rotated queries
// (rounded to T, as the reference rounds them) in shared memory and writes
// the keys and values whose slots lie in [lo, hi). Products and sums
// rounded one by one, as rotary.cu does.
template <typename T>
__device__ void rotate_and_write(const RingAttention &a, int row, int head, int64_t first, int lo, int hi,
                                 float *q_s) {
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
    const int slot = int(step % a.slots);
    if (slot < lo || slot >= hi) continue;
    const size_t at = size_t(slot) * D + 2 * p;
    keys[at] = from_float<T>(kr);
    keys[at + 1] = from_float<T>(ki);
    values[at] = v[0];
    values[at + 1] = v[1];
  }
}

// Slots s0..s0+kSlots-1 of a [slots, D] cache, a lane's elements of each
// (lane, lane + 32, ...), every load issued before any is used; 0 at and
// past `end` and past the head.
template <typename T, int kSlots, int kPerLane>
__device__ __forceinline__ void load_slots(const T *cache, int s0, int end, int D, int lane,
                                           float (&out)[kSlots][kPerLane]) {
#pragma unroll
  for (int i = 0; i < kSlots; ++i)
#pragma unroll
    for (int e = 0; e < kPerLane; ++e) {
      const int d = lane + 32 * e, s = s0 + i;
      out[i][e] = d < D && s < end ? to_float(cache[size_t(s) * D + d]) : 0.0f;
    }
}

}  // namespace personaplex::cuda
