// A 16 x 16 tile of outputs summed on the tensor cores by a block of
// kTileWarps warps, as the convolution kernels run their steps: each warp
// takes every kTileWarps-th step of the sum (16 terms an m16n8k16 product,
// two products a step for the tile's two 8-column halves), the warps' sums
// added through shared memory at the end. An operand gatherer fills a
// step's fragments: A (rows g and g + 8 of the tile, terms 4t..4t+3 of
// lane (g, t)) in f[0..3], B (column g of each half, the same terms) in
// f[4..7]; taking the same terms in both, the product's own term order is
// free.
#pragma once

#include <cstdint>

#include "cuda/widen_mma.cuh"

namespace personaplex::cuda {

constexpr int kTileWarps = 8;

// Two bf16 (their bits) as an operand register, the first in the low half.
__device__ __forceinline__ uint32_t pair_bits(uint32_t lo, uint32_t hi) { return lo | (hi << 16); }

// Four consecutive terms, the bits of load(0..3) (0 where not live), as
// an operand's two registers.
template <typename Load>
__device__ __forceinline__ void term_pairs(bool live, Load load, uint32_t &first, uint32_t &second) {
  uint32_t v[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) v[i] = live ? load(i) : 0u;
  first = pair_bits(v[0], v[1]);
  second = pair_bits(v[2], v[3]);
}

// The calling warp's steps warp, warp + kTileWarps, ... < steps into acc
// (the two halves' accumulators), the next step's loads in flight while
// this one's products run. operands(s, f) gathers step s.
template <typename Operands>
__device__ __forceinline__ void tile_products(int steps, Operands operands, float (&acc)[2][4]) {
  const int warp = threadIdx.x / 32;
  uint32_t cur[8], next[8] = {};
  if (warp < steps) operands(warp, cur);
  for (int s = warp; s < steps; s += kTileWarps) {
    if (s + kTileWarps < steps) operands(s + kTileWarps, next);
#pragma unroll
    for (int h = 0; h < 2; ++h) mma_bf16(acc[h], cur[0], cur[1], cur[2], cur[3], cur[4 + 2 * h], cur[5 + 2 * h]);
#pragma unroll
    for (int i = 0; i < 8; ++i) cur[i] = next[i];
  }
}

struct TileSums {
  float part[kTileWarps][2][4][32];
};

// The warps' sums added: thread i of the block (kTileWarps * 32 = 256 of
// them) gets the tile's output (row i / 16, column i % 16), which lane
// (i / 16 % 8) * 4 + i % 8 / 2 holds in register (i / 16 >= 8) * 2 + i % 2
// of half i % 16 / 8.
__device__ __forceinline__ float tile_sum(TileSums &shared, const float (&acc)[2][4]) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int r = 0; r < 4; ++r) shared.part[warp][h][r][lane] = acc[h][r];
  __syncthreads();
  const int i = threadIdx.x, h = i % 16 / 8, r = (i / 16 >= 8) * 2 + i % 2, from = (i / 16 % 8) * 4 + i % 8 / 2;
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < kTileWarps; ++j) sum += shared.part[j][h][r][from];
  return sum;
}

}  // namespace personaplex::cuda
