// Mimi's residual vector quantizer on CUDA: one launch per level to encode
// (every codebook vector's distance to each row's residual, the nearest one
// chosen and subtracted), one launch to decode a frame's codes (the chosen
// vectors summed per group and projected out). libtorch takes about a dozen
// launches a level (the distances as one product with the norms, the clamp,
// the root, the argmin, the gather, the subtraction and the layouts), more
// than the arithmetic costs at batch 1.
//
// Distances as the reference ranks them: sqrt(max(|x|^2 - 2 x.c + |c|^2, 0)),
// the lowest index winning a tie. Their sums run in another order than a
// matrix product's, so a code may differ where two distances are within
// rounding of each other; the subtraction is the same fp32 one.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct RvqLevel {
  float *residual = nullptr;         // row r's vector at residual + r * residual_stride, [dim]
  int64_t residual_stride = 0;
  const float *codebook = nullptr;   // [bins, dim]
  const float *norms = nullptr;      // [bins]: each vector's squared norm
  int64_t *codes = nullptr;          // row r = b * queries + t: codes[b * batch_stride + t]
  int64_t batch_stride = 0;
  int queries = 1;
  float *workspace = nullptr;        // rvq_workspace_floats(rows, bins)
  unsigned *counters = nullptr;      // [rows], zero before the launch; left zero after it
  int rows = 0, dim = 0, bins = 0;
};

// Whether rvq_level and rvq_decode take vectors of this width (a multiple
// of 4 floats, up to 512).
bool rvq_fits(int dim);
size_t rvq_workspace_floats(int rows, int bins);

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t rvq_level(const RvqLevel &args, cudaStream_t stream);

constexpr int kRvqMaxGroups = 2;

struct RvqGroup {
  const float *codebooks = nullptr;  // [levels, bins, dim]
  const float *projection = nullptr; // [out_dim, dim]
  int first = 0, levels = 0;         // the group's codebooks in the codes' second dimension
};

struct RvqDecode {
  const int64_t *codes = nullptr;  // [batch, all levels, queries], each in [0, bins)
  RvqGroup groups[kRvqMaxGroups];
  int group_count = 0;
  void *out = nullptr;             // [batch, out_dim, queries]: the groups' projections summed
  int batch = 0, all_levels = 0, queries = 0, bins = 0, dim = 0, out_dim = 0;
  Floats floats = Floats::kFloat32;  // out's
};

cudaError_t rvq_decode(const RvqDecode &args, cudaStream_t stream);

}  // namespace personaplex::cuda
