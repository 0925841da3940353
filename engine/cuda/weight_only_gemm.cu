#include "cuda/weight_only_gemm.h"

#include <cooperative_groups.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/env_choice.h"
#include "cuda/chained_launch.cuh"
#include "cuda/widen_mma.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kLanes = 32;
constexpr int kColumns = 128;  // output columns per block
constexpr int kTile = 64;      // k per tile: each lane's 16 bytes of a weight row, 4 lanes
// A staged row of x is kTile bf16 and 4 more: rows 136 bytes apart, so the
// 16 lanes of a half-warp reading 8 bytes each (rows g, offsets 32t + 8s)
// hit 32 different banks.
constexpr int kRowStride = kTile + 4;

// An 8-byte asynchronous copy from global to shared memory; zeros where
// `live` is false (rows past the last).
__device__ __forceinline__ void copy8_async(void *shared, const void *global, bool live) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(global), "r"(live ? 8 : 0));
}

__device__ __forceinline__ void copies_committed() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void copies_done() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Warps of a block owning 16 * CT columns each.
template <int CT>
constexpr int kWarpsOf = kColumns / (16 * CT);

// A warp's sums into its split's part (fp32 [rows, n]): acc[nt][c] holds
// columns col + 16c + g and + 8, x rows nt * 8 + 2t and + 1.
template <int NT, int CT>
__device__ __forceinline__ void store_parts(const float (&acc)[NT][CT][4], float *out, int rows, int n, int col, int g,
                                            int t) {
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const int r = nt * 8 + 2 * t;
#pragma unroll
    for (int c = 0; c < CT; ++c) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int cc = col + 16 * c + g + 8 * h;
        if (cc >= n) continue;
        if (r < rows) out[size_t(r) * n + cc] = acc[nt][c][2 * h];
        if (r + 1 < rows) out[size_t(r + 1) * n + cc] = acc[nt][c][2 * h + 1];
      }
    }
  }
}

// A block's sums in shared memory, fp32 [NT * 8][kSumStride]: rows 2t and
// 2t + 1 of a warp's lanes land 8 banks apart.
constexpr int kSumStride = kColumns + 4;

// The blocks of a cluster (one a split of k, compute 9.0+) put their sums in
// their shared memory; each then adds up its share of the 128 columns' rows
// over every block's, through distributed shared memory, and writes them
// scaled as bf16: no parts in global memory, no second kernel.
template <int NT, int CT>
__device__ __forceinline__ void sum_in_cluster(const float (&acc)[NT][CT][4], float *sums, const float *scale,
                                               __nv_bfloat16 *y, int rows, int n, int column_block, int warp, int g,
                                               int t) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
#pragma unroll
    for (int c = 0; c < CT; ++c) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int r = nt * 8 + 2 * t, cl = warp * 16 * CT + 16 * c + g + 8 * h;
        sums[r * kSumStride + cl] = acc[nt][c][2 * h];
        sums[(r + 1) * kSumStride + cl] = acc[nt][c][2 * h + 1];
      }
    }
  }
  cg::cluster_group cluster = cg::this_cluster();
  cluster.sync();  // every block's sums written
  const int blocks = int(cluster.num_blocks()), rank = int(cluster.block_rank());
  for (int o = rank * int(blockDim.x) + int(threadIdx.x); o < rows * kColumns; o += blocks * int(blockDim.x)) {
    const int r = o / kColumns, cl = o % kColumns, cc = column_block * kColumns + cl;
    if (cc >= n) continue;
    float sum = 0.0f;
    for (int b = 0; b < blocks; ++b) sum += cluster.map_shared_rank(sums, b)[r * kSumStride + cl];
    y[size_t(r) * n + cc] = __float2bfloat16(sum * scale[cc]);
  }
  cluster.sync();  // no block leaves while another reads its sums
#else
  __trap();  // launched on compute 9.0+ only
#endif
}

// Blocks of 128 columns, and k split into `splits` ranges of whole tiles:
// block (c, s) sums x · qᵀ over its range into part[s] (fp32 [rows, n]).
// The block stages x [NT * 8 rows, 64] in shared memory a tile ahead:
// asynchronous copies fill the other buffer while this tile is used (one
// barrier a tile), where staging each tile in place made every tile wait
// for its x to come from L2. A warp owns CT groups of 16 columns, lane
// (g, t) loads 16 contiguous bytes of columns g and g + 8 of each and feeds,
// per 8 rows of x, four m16n8k16 products a group, with the k permutation
// of weight_only_gemv's mma kernel (lane t's positions of step s are its
// bytes 4s..4s+3, in the weights and in x alike). Each x fragment read from
// shared memory serves the CT groups: with two, half the shared-memory
// reads per weight byte.
template <GemvWeights W, int NT, int CT, int DEPTH, bool kClustered>
__global__ void __launch_bounds__(kWarpsOf<CT> *kLanes)
    gemm_kernel(const __nv_bfloat16 *__restrict__ x, const uint8_t *__restrict__ q, float *__restrict__ part,
                const float *__restrict__ scale, __nv_bfloat16 *__restrict__ y, int rows, int n, int k,
                int tiles_per_split) {
  wait_for_previous();
  start_next();
  constexpr int kThreads = kWarpsOf<CT> * kLanes;
  using Staged = __nv_bfloat16[2][NT * 8][kRowStride];
  // In a cluster the staging buffers then hold the block's sums.
  constexpr size_t kSums = sizeof(float) * NT * 8 * kSumStride;
  constexpr size_t kBytes = kClustered && kSums > sizeof(Staged) ? kSums : sizeof(Staged);
  __shared__ __align__(16) unsigned char shared[kBytes];
  Staged &xs = *reinterpret_cast<Staged *>(shared);
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int g = lane / 4, t = lane % 4;
  const int split = kClustered ? blockIdx.x : blockIdx.y, column_block = kClustered ? blockIdx.y : blockIdx.x;
  const int col = column_block * kColumns + warp * 16 * CT;
  const int tiles = k / kTile;
  const int first = split * tiles_per_split, last = min(tiles, first + tiles_per_split);
  const uint4 *wa[CT], *wb[CT];
#pragma unroll
  for (int c = 0; c < CT; ++c) {
    wa[c] = reinterpret_cast<const uint4 *>(q + size_t(min(col + 16 * c + g, n - 1)) * k) + t;
    wb[c] = reinterpret_cast<const uint4 *>(q + size_t(min(col + 16 * c + g + 8, n - 1)) * k) + t;
  }
  float acc[NT][CT][4] = {};
  // The weights of the next DEPTH tiles are loaded while this one's are
  // used: DEPTH + 1 tiles' bytes in flight. ahead[0] is this tile's.
  uint4 ahead[DEPTH][CT][2];
  auto load = [&](int tile, uint4(&v)[CT][2]) {
#pragma unroll
    for (int c = 0; c < CT; ++c) {
      v[c][0] = v[c][1] = make_uint4(0, 0, 0, 0);
      if (tile < last) v[c][0] = __ldg(wa[c] + tile * 4), v[c][1] = __ldg(wb[c] + tile * 4);
    }
  };
#pragma unroll
  for (int d = 0; d < DEPTH; ++d) load(first + d, ahead[d]);
  // x's tile into buffer `buf`: 8 16-byte pieces a row, copied as two
  // 8-byte halves (a padded row's start is 8-byte aligned only).
  auto stage = [&](int tile, int buf) {
    for (int i = threadIdx.x; i < NT * 8 * 8; i += kThreads) {
      const int r = i / 8, piece = i % 8;
      const __nv_bfloat16 *src = x + size_t(r < rows ? r : 0) * k + tile * kTile + piece * 8;
      copy8_async(&xs[buf][r][piece * 8], src, r < rows);
      copy8_async(&xs[buf][r][piece * 8 + 4], src + 4, r < rows);
    }
    copies_committed();
  };
  if (first < last) stage(first, 0);
  for (int tile = first; tile < last; ++tile) {
    const int buf = (tile - first) & 1;
    uint4 incoming[CT][2];
    load(tile + DEPTH, incoming);
    // This tile's x has landed, and every warp is done with the other
    // buffer (the last tile's): the next tile's copies may start.
    copies_done();
    __syncthreads();
    if (tile + 1 < last) stage(tile + 1, buf ^ 1);
    uint32_t a[CT][4][4];
#pragma unroll
    for (int c = 0; c < CT; ++c) weight_fragments<W>(ahead[0][c][0], ahead[0][c][1], a[c]);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint2 h = *reinterpret_cast<const uint2 *>(&xs[buf][nt * 8 + g][t * 16 + 4 * s]);
#pragma unroll
        for (int c = 0; c < CT; ++c) mma_bf16(acc[nt][c], a[c][s][0], a[c][s][1], a[c][s][2], a[c][s][3], h.x, h.y);
      }
    }
#pragma unroll
    for (int d = 0; d + 1 < DEPTH; ++d) {
#pragma unroll
      for (int c = 0; c < CT; ++c) ahead[d][c][0] = ahead[d + 1][c][0], ahead[d][c][1] = ahead[d + 1][c][1];
    }
#pragma unroll
    for (int c = 0; c < CT; ++c) ahead[DEPTH - 1][c][0] = incoming[c][0], ahead[DEPTH - 1][c][1] = incoming[c][1];
  }
  if constexpr (kClustered) {
    __syncthreads();  // every warp is done with the staged x
    sum_in_cluster<NT, CT>(acc, reinterpret_cast<float *>(shared), scale, y, rows, n, column_block, warp, g, t);
  } else {
    store_parts<NT, CT>(acc, part + size_t(split) * rows * n, rows, n, col, g, t);
  }
}

// y = (Σ_s part[s]) · scale, as bf16.
__global__ void sum_parts_kernel(const float *__restrict__ part, const float *__restrict__ scale,
                                 __nv_bfloat16 *__restrict__ y, int rows, int n, int splits) {
  wait_for_previous();
  start_next();
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x, total = size_t(rows) * n;
  if (i >= total) return;
  float sum = 0.0f;
  for (int s = 0; s < splits; ++s) sum += part[size_t(s) * total + i];
  y[i] = __float2bfloat16(sum * scale[i % n]);
}

struct Device {
  int sms = 1, major = 0;
};

Device current_device() {
  Device d;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&d.major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess)
    return Device{};
  return d;
}

// How a call runs: k split `splits` ways, the parts summed by a second
// kernel through the workspace, or (`clustered`) within a cluster of the
// splits' blocks.
struct Plan {
  int splits = 1;
  bool clustered = false;
};

// Splits of k for `column_blocks` blocks of columns: enough blocks for two
// an SM, or with PERSONAPLEX_GEMM_BLOCKS_PER_SM=N (1 to 8, to measure) as
// many as N an SM hold in one wave (the kernel for 33-64 rows fits 3: its
// registers).
int64_t wanted_splits(int64_t column_blocks, int sms) {
  const int chosen = std::atoi(env_choice("PERSONAPLEX_GEMM_BLOCKS_PER_SM"));
  if (chosen >= 1 && chosen <= 8) return chosen * sms / column_blocks;
  return (2 * sms + column_blocks - 1) / column_blocks;
}

// The most blocks of a portable cluster.
constexpr int64_t kMaxClusterBlocks = 8;

// Splits of k: wanted_splits, each at least two tiles long; summed in
// clusters (compute 9.0+, up to 64 rows, at most a portable cluster's
// blocks) with PERSONAPLEX_GEMM_SPLITS=cluster, to measure.
Plan plan_for(int64_t rows, int64_t n, int64_t k) {
  const Device d = current_device();
  const int64_t column_blocks = (n + kColumns - 1) / kColumns, tiles = k / kTile;
  Plan p;
  p.splits = int(std::max<int64_t>(1, std::min<int64_t>(wanted_splits(column_blocks, d.sms), tiles / 2)));
  p.clustered = d.major >= 9 && rows <= 64 && env_choice_is("PERSONAPLEX_GEMM_SPLITS", "cluster");
  if (p.clustered) p.splits = int(std::min<int64_t>(p.splits, kMaxClusterBlocks));
  return p;
}

struct Call {
  const void *x, *q;
  const float *scale;
  void *y;
  float *part;
  int rows, n, k;
};

template <GemvWeights W, int NT, int CT, int DEPTH>
cudaError_t launch_gemm(const Call &c, const Plan &p, cudaStream_t stream) {
  const int tiles = c.k / kTile, per_split = (tiles + p.splits - 1) / p.splits;
  const unsigned column_blocks = unsigned((c.n + kColumns - 1) / kColumns);
  const dim3 block(kWarpsOf<CT> * kLanes);
  const auto *x = static_cast<const __nv_bfloat16 *>(c.x);
  const auto *q = static_cast<const uint8_t *>(c.q);
  auto *y = static_cast<__nv_bfloat16 *>(c.y);
  if (p.clustered) {
    if constexpr (NT <= 8) {
      return launch_chained_clusters(gemm_kernel<W, NT, CT, DEPTH, true>, dim3(p.splits, column_blocks), block, 0,
                                     stream, unsigned(p.splits), x, q, c.part, c.scale, y, c.rows, c.n, c.k,
                                     per_split);
    }
    return cudaErrorInvalidValue;
  }
  return launch_chained(gemm_kernel<W, NT, CT, DEPTH, false>, dim3(column_blocks, p.splits), block, 0, stream, x, q,
                        c.part, c.scale, y, c.rows, c.n, c.k, per_split);
}

// Two column groups a warp from 33 to 64 rows (measured on an H200, x staged
// in place: 1.1-1.9x faster at 64 rows, slower at 32; staged ahead: 1.0-1.4x
// at 64, even at 32); past 64 their accumulators would not fit in registers.
// PERSONAPLEX_GEMM_GROUPS=1 or =2 takes that many at every row count up to
// 64 (to measure).
template <GemvWeights W, int DEPTH>
cudaError_t launch_rows(const Call &c, const Plan &p, cudaStream_t stream) {
  const char *groups = env_choice("PERSONAPLEX_GEMM_GROUPS");
  const bool one = std::strcmp(groups, "1") == 0, two = std::strcmp(groups, "2") == 0;
  if (c.rows <= 32) return two ? launch_gemm<W, 4, 2, DEPTH>(c, p, stream) : launch_gemm<W, 4, 1, DEPTH>(c, p, stream);
  if (c.rows <= 64) return one ? launch_gemm<W, 8, 1, DEPTH>(c, p, stream) : launch_gemm<W, 8, 2, DEPTH>(c, p, stream);
  return launch_gemm<W, 16, 1, DEPTH>(c, p, stream);
}

// The weights one tile ahead, or two with PERSONAPLEX_GEMM_PREFETCH=2 (to
// measure).
template <GemvWeights W>
cudaError_t launch_depth(const Call &c, const Plan &p, cudaStream_t stream) {
  if (env_choice_is("PERSONAPLEX_GEMM_PREFETCH", "2")) return launch_rows<W, 2>(c, p, stream);
  return launch_rows<W, 1>(c, p, stream);
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

bool weight_only_gemm_fits(int64_t rows, int64_t n, int64_t k, const void *x, const void *q) {
  return rows >= 1 && rows <= kGemmMaxRows && n >= 1 && k >= kTile && k % kTile == 0 &&
         rows * n < (int64_t(1) << 31) && n * k < (int64_t(1) << 40) && k < (int64_t(1) << 31) && aligned16(x) &&
         aligned16(q);
}

int64_t weight_only_gemm_workspace(int64_t rows, int64_t n, int64_t k) {
  const Plan p = plan_for(rows, n, k);
  return p.clustered ? 0 : int64_t(p.splits) * rows * n;
}

cudaError_t weight_only_gemm(const void *x, const void *q, const float *scale, void *y, float *workspace,
                             int64_t rows, int64_t n, int64_t k, GemvWeights weights, cudaStream_t stream) {
  if (!weight_only_gemm_fits(rows, n, k, x, q)) return cudaErrorInvalidValue;
  const Plan p = plan_for(rows, n, k);
  const Call c{x, q, scale, y, workspace, int(rows), int(n), int(k)};
  const cudaError_t e = weights == GemvWeights::kInt8 ? launch_depth<GemvWeights::kInt8>(c, p, stream)
                                                      : launch_depth<GemvWeights::kFp8E4M3>(c, p, stream);
  if (e != cudaSuccess || p.clustered) return e;
  const int64_t total = rows * n;
  const int threads = 256;
  return launch_chained(sum_parts_kernel, dim3(unsigned((total + threads - 1) / threads)), dim3(threads), 0, stream,
                        workspace, scale, static_cast<__nv_bfloat16 *>(y), int(rows), int(n), p.splits);
}

}  // namespace personaplex::cuda
