// How many warps the CUDA-core convolution kernels split each output's sum
// over. Host side only.
#pragma once

#include <cstdint>

namespace personaplex::cuda {

// Warps for each of `jobs` sums of `terms` terms, a power of two up to
// `limit`: enough that a thread's share is at most `most` terms, more while
// the jobs alone leave the GPU idle (under 4096 warps in all) and a
// thread's share stays at least `least`.
inline int warps_per_sum(int64_t terms, int64_t jobs, int64_t most, int64_t least, int limit) {
  int warps = 1;
  while (warps < limit && terms > 32 * most * warps) warps *= 2;
  while (warps < limit && jobs * warps < 4096 && terms >= 32 * least * warps * 2) warps *= 2;
  return warps;
}

}  // namespace personaplex::cuda
