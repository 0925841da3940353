// Rotary position embedding of a strided tensor in one launch, on CUDA:
// each pair (re, im) of the last dimension turned by its angle's cos and
// sin, in fp32, into a contiguous result of x's dtype. libtorch takes about
// eight launches (widening, four products, two sums, stacking, narrowing).
// The products and sums are rounded one by one as libtorch's are, so both
// paths give the same values.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

constexpr int kRotaryDims = 5;

struct Rotary {
  // Pairs indexed [i0..i4] (i4 < the last dimension / 2), strides in
  // elements: x's pair i4 is at 2 * i4 * x_stride[4]; cos and sin (fp32)
  // index the pair itself (0 where broadcast).
  int64_t size[kRotaryDims] = {};
  int64_t x_stride[kRotaryDims] = {};
  int64_t angle_stride[kRotaryDims] = {};
  const void *x = nullptr;
  const float *cos = nullptr, *sin = nullptr;
  void *out = nullptr;  // contiguous, 2 * pairs elements
  Floats floats = Floats::kBFloat16;  // activations in and out
};

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t rotary(const Rotary &args, cudaStream_t stream);

}  // namespace personaplex::cuda
