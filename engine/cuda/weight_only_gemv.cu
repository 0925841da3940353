#include "cuda/weight_only_gemv.h"

#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cstdint>

#include "cuda/chained_launch.cuh"
#include "cuda/float_io.cuh"
#include "cuda/widen_mma.cuh"

namespace personaplex::cuda {
namespace {

constexpr int kWarps = 8;  // output rows per block: x stays in L1 across them
constexpr int kLanes = 32;
constexpr int kChunk = 16;  // weights per 16-byte load
constexpr int kLine = 128;  // bytes of an L2 line
constexpr int kUnroll = 4;  // stretches of 32 chunks a warp has in flight at one or two rows
constexpr int kPrefetchStretches = 4;

__device__ __forceinline__ void prefetch_l2(const void *p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }

// 16-byte loads per 16 weights.
template <GemvWeights W>
constexpr int kLoads = W == GemvWeights::kBFloat16 ? 2 : 1;

// 16 weights of kLoads<W> 16-byte loads as floats.
template <GemvWeights W>
__device__ __forceinline__ void widen(const uint4 *v, float *out) {
  if constexpr (W == GemvWeights::kBFloat16) {
#pragma unroll
    for (int l = 0; l < 2; ++l) {
      const uint32_t words[4] = {v[l].x, v[l].y, v[l].z, v[l].w};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        out[8 * l + 2 * i] = __uint_as_float(words[i] << 16);
        out[8 * l + 2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
      }
    }
    return;
  }
  const uint32_t words[4] = {v->x, v->y, v->z, v->w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (W == GemvWeights::kInt8) {
#pragma unroll
      for (int b = 0; b < 4; ++b) out[4 * i + b] = int8_float(words[i], b);
    } else {
      const __nv_fp8x2_storage_t lo = __nv_fp8x2_storage_t(words[i] & 0xffff);
      const __nv_fp8x2_storage_t hi = __nv_fp8x2_storage_t(words[i] >> 16);
      const float2 a = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(lo, __NV_E4M3)));
      const float2 b = __half22float2(__half2(__nv_cvt_fp8x2_to_halfraw2(hi, __NV_E4M3)));
      out[4 * i + 0] = a.x;
      out[4 * i + 1] = a.y;
      out[4 * i + 2] = b.x;
      out[4 * i + 3] = b.y;
    }
  }
}

// The 16 activations at chunk c of a row, as floats.
__device__ __forceinline__ void load16(const float *row, int c, float *out) {
  const float4 *p = reinterpret_cast<const float4 *>(row) + 4 * c;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float4 v = __ldg(p + i);
    out[4 * i] = v.x;
    out[4 * i + 1] = v.y;
    out[4 * i + 2] = v.z;
    out[4 * i + 3] = v.w;
  }
}

__device__ __forceinline__ void load16(const __nv_bfloat16 *row, int c, float *out) {
  const uint4 *p = reinterpret_cast<const uint4 *>(row) + 2 * c;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint4 v = __ldg(p + i);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      __nv_bfloat162 pair;
      *reinterpret_cast<uint32_t *>(&pair) = words[j];
      const float2 f = __bfloat1622float2(pair);
      out[8 * i + 2 * j] = f.x;
      out[8 * i + 2 * j + 1] = f.y;
    }
  }
}

__device__ __forceinline__ void store(float *y, float v) { *y = v; }
__device__ __forceinline__ void store(__nv_bfloat16 *y, float v) { *y = __float2bfloat16(v); }

// One warp per C output columns: its lanes stride over the weight rows in
// 16-byte loads (coalesced, each weight read once), every row of x (read
// once per C columns) against them, then a warp reduction. One column per
// warp keeps most loads in flight for one or two rows (bound by the weight
// bytes); more rows take C = 4, so that each activation loaded serves four
// weights. With S > 1, S warps of a block share a column, each taking every
// S-th stretch of 32 chunks, and add their sums in a fixed order: fewer
// round trips per warp where the columns alone would not fill the GPU.
//
// Gated (G): the product is a gated MLP's input, whose outputs [a, b] are
// two halves of n each; a warp takes column i of both (C = 2, n the half)
// and stores silu(a) * b, rounded as cuda/silu_gate.h rounds from a and b
// as this kernel would have stored them: the same bits as the two launches.
template <GemvWeights W, typename T, int R, int C, int S, bool G = false>
__global__ void __launch_bounds__(kWarps *kLanes)
    gemv_kernel(const T *__restrict__ x, const uint4 *__restrict__ q, const float *__restrict__ scale,
                T *__restrict__ y, int n, int k) {
  static_assert(S == 1 || C == 1, "a split column is a single one");
  static_assert(!G || (C == 2 && S == 1), "a gated warp takes a column of each half");
  __shared__ float sums[S > 1 ? kWarps : 1][R];
  const int lane = threadIdx.x % kLanes, warp = threadIdx.x / kLanes, part = warp % S;
  const int first = (blockIdx.x * (kWarps / S) + warp / S) * (G ? 1 : C);
  if (S == 1 && first >= n) return;
  const bool live = first < n;
  const int chunks = k / kChunk;
  const uint4 *rows[C];
#pragma unroll
  for (int j = 0; j < C; ++j)  // past the last column, the last repeats
    rows[j] = q + (G ? size_t(first) + size_t(j) * n : size_t(min(first + j, n - 1))) * chunks * kLoads<W>;
  float acc[R][C];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int j = 0; j < C; ++j) acc[r][j] = 0.0f;
  // The weights are no earlier kernel's output: the lines of this warp's
  // first loads are fetched into L2 while the kernel before is finishing.
  constexpr int kLinesPerStretch = kLanes * kChunk * kLoads<W> / kLine;
  if (live && lane < kLinesPerStretch) {
#pragma unroll
    for (int j = 0; j < C; ++j)
#pragma unroll
      for (int i = 0; i < kPrefetchStretches; ++i) {
        const int stretch = i * S + part;
        if (stretch * kLanes < chunks)
          prefetch_l2(reinterpret_cast<const char *>(rows[j] + size_t(stretch) * kLanes * kLoads<W>) + lane * kLine);
      }
  }
  wait_for_previous();
  start_next();
  if (live) {
#pragma unroll(C == 1 ? kUnroll : G ? kUnroll / 2 : 1)
    for (int c = part * kLanes + lane; c < chunks; c += S * kLanes) {
      float w[C][kChunk];
#pragma unroll
      for (int j = 0; j < C; ++j) {
        uint4 v[kLoads<W>];
#pragma unroll
        for (int l = 0; l < kLoads<W>; ++l) v[l] = __ldg(rows[j] + kLoads<W> * c + l);
        widen<W>(v, w[j]);
      }
#pragma unroll
      for (int r = 0; r < R; ++r) {
        float a[kChunk];
        load16(x + size_t(r) * k, c, a);
#pragma unroll
        for (int j = 0; j < C; ++j)
#pragma unroll
          for (int i = 0; i < kChunk; ++i) acc[r][j] = fmaf(a[i], w[j][i], acc[r][j]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int j = 0; j < C; ++j)
#pragma unroll
      for (int off = kLanes / 2; off > 0; off /= 2) acc[r][j] += __shfl_xor_sync(0xffffffffu, acc[r][j], off);
  if constexpr (S > 1) {
    if (lane == 0)
#pragma unroll
      for (int r = 0; r < R; ++r) sums[warp][r] = acc[r][0];
    __syncthreads();
    if (part != 0) return;
#pragma unroll
    for (int r = 0; r < R; ++r) {
      acc[r][0] = sums[warp][r];
#pragma unroll
      for (int p = 1; p < S; ++p) acc[r][0] += sums[warp + p][r];
    }
  }
  if (lane == 0 && live) {
    if constexpr (G) {
      const float sa = scale ? scale[first] : 1.0f, sb = scale ? scale[first + n] : 1.0f;
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float a = to_float(from_float<T>(acc[r][0] * sa)), b = to_float(from_float<T>(acc[r][1] * sb));
        const float silu = to_float(from_float<T>(__fdiv_rn(a, __fadd_rn(1.0f, expf(-a)))));
        y[size_t(r) * n + first] = from_float<T>(__fmul_rn(silu, b));
      }
    } else {
#pragma unroll
      for (int j = 0; j < C; ++j) {
        if (first + j >= n) break;
        const float s = scale ? scale[first + j] : 1.0f;
#pragma unroll
        for (int r = 0; r < R; ++r) store(y + size_t(r) * n + first + j, acc[r][j] * s);
      }
    }
  }
}

constexpr int kTile = 64;  // weights of a row per warp and tile: 4 lanes x 16 bytes

// Three to sixteen rows of bf16 x on the tensor cores: a block owns 16 output
// columns, its warps split k in tiles of 64 and add their parts up in shared
// memory. Lane (g, t) loads 16 contiguous bytes of columns g and g + 8 and
// the 16 activations of x row g beside them, widens the weights to bf16 in
// registers and feeds four m16n8k16 products (16 columns x 8 rows each). A
// product's k order is any permutation shared by both operands: lane t's
// fragment positions {2t, 2t+1, 2t+8, 2t+9} of step s are its bytes
// 4s..4s+3, so every load is 16 bytes and nothing is shuffled.
template <GemvWeights W, int NT>
__global__ void __launch_bounds__(kWarps *kLanes)
    mma_kernel(const __nv_bfloat16 *__restrict__ x, const uint8_t *__restrict__ q, const float *__restrict__ scale,
               __nv_bfloat16 *__restrict__ y, int rows, int n, int k) {
  wait_for_previous();
  start_next();
  __shared__ float part[kWarps][16][8 * NT];
  const int warp = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int g = lane / 4, t = lane % 4;
  const int col0 = blockIdx.x * 16;
  const uint4 *wa = reinterpret_cast<const uint4 *>(q + size_t(min(col0 + g, n - 1)) * k) + t;
  const uint4 *wb = reinterpret_cast<const uint4 *>(q + size_t(min(col0 + g + 8, n - 1)) * k) + t;
  const uint4 *xr[NT];
  bool live[NT];
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    live[nt] = nt * 8 + g < rows;
    xr[nt] = reinterpret_cast<const uint4 *>(x + size_t(live[nt] ? nt * 8 + g : 0) * k) + 2 * t;
  }
  float acc[NT][4] = {};
  const int tiles = k / kTile;
#pragma unroll 2
  for (int tile = warp; tile < tiles; tile += kWarps) {
    const uint4 va = __ldg(wa + tile * 4), vb = __ldg(wb + tile * 4);
    uint4 xv[NT][2];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      xv[nt][0] = live[nt] ? __ldg(xr[nt] + tile * 8) : make_uint4(0, 0, 0, 0);
      xv[nt][1] = live[nt] ? __ldg(xr[nt] + tile * 8 + 1) : make_uint4(0, 0, 0, 0);
    }
    uint32_t a[4][4];
    weight_fragments<W>(va, vb, a);
#pragma unroll
    for (int s = 0; s < 4; ++s) {
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const uint4 &h = xv[nt][s / 2];
        const uint32_t b0 = s % 2 == 0 ? h.x : h.z, b1 = s % 2 == 0 ? h.y : h.w;
        mma_bf16(acc[nt], a[s][0], a[s][1], a[s][2], a[s][3], b0, b1);
      }
    }
  }
  // acc: columns g and g + 8, x rows 2t and 2t + 1 of each group of 8.
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    part[warp][g][nt * 8 + 2 * t] = acc[nt][0];
    part[warp][g][nt * 8 + 2 * t + 1] = acc[nt][1];
    part[warp][g + 8][nt * 8 + 2 * t] = acc[nt][2];
    part[warp][g + 8][nt * 8 + 2 * t + 1] = acc[nt][3];
  }
  __syncthreads();
  const int col = threadIdx.x / (8 * NT), row = threadIdx.x % (8 * NT);
  if (col >= 16 || col0 + col >= n || row >= rows) return;
  float sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) sum += part[w][col][row];
  y[size_t(row) * n + col0 + col] = __float2bfloat16(sum * scale[col0 + col]);
}

template <GemvWeights W>
cudaError_t launch_mma(int rows, const void *x, const void *q, const float *scale, void *y, int n, int k,
                       cudaStream_t stream) {
  const dim3 grid((n + 15) / 16), block(kWarps * kLanes);
  const auto *xb = static_cast<const __nv_bfloat16 *>(x);
  const auto *qb = static_cast<const uint8_t *>(q);
  auto *yb = static_cast<__nv_bfloat16 *>(y);
  if (rows <= 8) return launch_chained(mma_kernel<W, 1>, grid, block, 0, stream, xb, qb, scale, yb, rows, n, k);
  return launch_chained(mma_kernel<W, 2>, grid, block, 0, stream, xb, qb, scale, yb, rows, n, k);
}

// Warps of the one-row kernel resident on the whole GPU at once.
template <GemvWeights W, typename T>
int resident_warps() {
  static const int warps = [] {
    int device = 0, sms = 0, blocks = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, gemv_kernel<W, T, 1, 1, 1>, kWarps * kLanes, 0) !=
            cudaSuccess)
      return 0;
    return sms * blocks * kWarps;
  }();
  return warps;
}

// Warps per column: doubled while the columns leave resident warps idle and
// each warp keeps at least one unrolled pass of 32-chunk stretches. The same
// for one row and two, so that a row's sum does not depend on its batch.
template <GemvWeights W, typename T>
int split_for(int n, int k) {
  const int resident = resident_warps<W, T>(), chunks = k / kChunk;
  int split = 1;
  while (split < kWarps && int64_t(n) * split < resident && chunks >= 2 * split * kLanes * kUnroll) split *= 2;
  return split;
}

template <GemvWeights W, typename T, int R, int C, int S>
cudaError_t launch_split(const void *x, const void *q, const float *scale, void *y, int n, int k,
                         cudaStream_t stream) {
  const int64_t warps = int64_t((n + C - 1) / C) * S;
  const dim3 grid(unsigned((warps + kWarps - 1) / kWarps)), block(kWarps * kLanes);
  return launch_chained(gemv_kernel<W, T, R, C, S>, grid, block, 0, stream, static_cast<const T *>(x),
                        static_cast<const uint4 *>(q), scale, static_cast<T *>(y), n, k);
}

template <GemvWeights W, typename T, int R>
cudaError_t launch_rows(int rows, const void *x, const void *q, const float *scale, void *y, int n, int k,
                        cudaStream_t stream) {
  if constexpr (R > 1) {
    if (rows < R) return launch_rows<W, T, R - 1>(rows, x, q, scale, y, n, k, stream);
  }
  if constexpr (R > 2) {
    return launch_split<W, T, R, 4, 1>(x, q, scale, y, n, k, stream);
  } else {
    switch (split_for<W, T>(n, k)) {
      case 1: return launch_split<W, T, R, 1, 1>(x, q, scale, y, n, k, stream);
      case 2: return launch_split<W, T, R, 1, 2>(x, q, scale, y, n, k, stream);
      case 4: return launch_split<W, T, R, 1, 4>(x, q, scale, y, n, k, stream);
      default: return launch_split<W, T, R, 1, 8>(x, q, scale, y, n, k, stream);
    }
  }
}

template <GemvWeights W>
cudaError_t launch(GemvFloats floats, int rows, const void *x, const void *q, const float *scale, void *y, int n,
                   int k, cudaStream_t stream) {
  // Past two rows, the widened weights serve every row on the tensor cores.
  // (bf16 weights have no such path: cuBLAS serves them past two rows.)
  if constexpr (W != GemvWeights::kBFloat16) {
    if (floats == GemvFloats::kBFloat16 && rows > 2 && k % kTile == 0)
      return launch_mma<W>(rows, x, q, scale, y, n, k, stream);
  }
  if (floats == GemvFloats::kBFloat16)
    return launch_rows<W, __nv_bfloat16, kGemvMaxRows>(rows, x, q, scale, y, n, k, stream);
  return launch_rows<W, float, kGemvMaxRows>(rows, x, q, scale, y, n, k, stream);
}

bool aligned16(const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// The gated kernel where the plain one would run one warp a column (the
// split's sums are not the same as one warp's).
template <GemvWeights W, typename T>
cudaError_t launch_gated(int rows, const void *x, const void *q, const float *scale, void *y, int hidden, int k,
                         cudaStream_t stream) {
  if (split_for<W, T>(2 * hidden, k) != 1) return cudaErrorNotSupported;
  const dim3 grid(unsigned((hidden + kWarps - 1) / kWarps)), block(kWarps * kLanes);
  const auto *xt = static_cast<const T *>(x);
  const auto *qv = static_cast<const uint4 *>(q);
  auto *yt = static_cast<T *>(y);
  if (rows == 1) return launch_chained(gemv_kernel<W, T, 1, 2, 1, true>, grid, block, 0, stream, xt, qv, scale, yt,
                                       hidden, k);
  return launch_chained(gemv_kernel<W, T, 2, 2, 1, true>, grid, block, 0, stream, xt, qv, scale, yt, hidden, k);
}

template <GemvWeights W>
cudaError_t launch_gated(GemvFloats floats, int rows, const void *x, const void *q, const float *scale, void *y,
                         int hidden, int k, cudaStream_t stream) {
  if (floats == GemvFloats::kBFloat16)
    return launch_gated<W, __nv_bfloat16>(rows, x, q, scale, y, hidden, k, stream);
  return launch_gated<W, float>(rows, x, q, scale, y, hidden, k, stream);
}

}  // namespace

bool weight_only_gemv_fits(int64_t rows, int64_t n, int64_t k, const void *x, const void *q, const void *y) {
  return rows >= 1 && rows <= kGemvMaxRows && n >= 1 && n < (int64_t(1) << 31) && k >= kChunk &&
         k % kChunk == 0 && k < (int64_t(1) << 31) && aligned16(x) && aligned16(q) && aligned16(y);
}

cudaError_t weight_only_gemv(const void *x, const void *q, const float *scale, void *y, int64_t rows, int64_t n,
                             int64_t k, GemvWeights weights, GemvFloats floats, cudaStream_t stream) {
  if (!weight_only_gemv_fits(rows, n, k, x, q, y)) return cudaErrorInvalidValue;
  if (weights == GemvWeights::kInt8)
    return launch<GemvWeights::kInt8>(floats, int(rows), x, q, scale, y, int(n), int(k), stream);
  if (weights == GemvWeights::kBFloat16)
    return launch<GemvWeights::kBFloat16>(floats, int(rows), x, q, scale, y, int(n), int(k), stream);
  return launch<GemvWeights::kFp8E4M3>(floats, int(rows), x, q, scale, y, int(n), int(k), stream);
}

cudaError_t weight_only_gemv_silu_gate(const void *x, const void *q, const float *scale, void *y, int64_t rows,
                                       int64_t hidden, int64_t k, GemvWeights weights, GemvFloats floats,
                                       cudaStream_t stream) {
  if (rows < 1 || rows > kGatedGemvMaxRows || hidden < 1 || !weight_only_gemv_fits(rows, 2 * hidden, k, x, q, y))
    return cudaErrorInvalidValue;
  if (weights == GemvWeights::kInt8)
    return launch_gated<GemvWeights::kInt8>(floats, int(rows), x, q, scale, y, int(hidden), int(k), stream);
  if (weights == GemvWeights::kBFloat16)
    return launch_gated<GemvWeights::kBFloat16>(floats, int(rows), x, q, scale, y, int(hidden), int(k), stream);
  return launch_gated<GemvWeights::kFp8E4M3>(floats, int(rows), x, q, scale, y, int(hidden), int(k), stream);
}

}  // namespace personaplex::cuda
