// One streaming step of a 1-D convolution, on CUDA, in one launch: the
// window reads the kept context and the new input in place (no
// concatenation), the bias, a skip connection and the next layer's ELU are
// applied on the way out. libtorch takes seven launches a convolution at
// batch 1 (the concatenation, cuDNN's two layout changes there and one
// back, the product, the bias) and one more for each addition and ELU;
// Mimi's SEANet runs fourteen convolutions each way a frame.
//
// Sums in fp32; the result rounded to the activations' dtype once, then the
// skip added (rounded again, as libtorch's addition is) and the ELU taken of
// that (rounded as libtorch's is).
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct Conv1dStep {
  // The input, its kept context first: element t of channel c, row b is
  // previous[(b * in_channels + c) * previous_length + t] for t <
  // previous_length, then x[b * x_batch_stride + c * x_channel_stride + t -
  // previous_length].
  const void *previous = nullptr;
  int previous_length = 0;
  const void *x = nullptr;
  int64_t x_batch_stride = 0, x_channel_stride = 0;
  const void *weight = nullptr;  // [out_channels, in_channels, kernel], contiguous
  const void *bias = nullptr;    // [out_channels], or null
  const void *skip = nullptr;    // [batch, out_channels, out_length], contiguous, or null
  void *out = nullptr;           // [batch, out_channels, out_length], or null
  void *out_elu = nullptr;       // its ELU, the same layout, or null
  float elu_alpha = 1.0f;
  int batch = 0, in_channels = 0, out_channels = 0, kernel = 0, stride = 1, dilation = 1, out_length = 0;
  Floats floats = Floats::kBFloat16;  // input, weights, bias, skip and outputs
};

// Whether the tensor-core kernel takes these sizes: bf16, input channels a
// multiple of 16, at least kConvMmaMinOutputs outputs a row. The others run
// on CUDA cores: a thread an output where the sums are short, else threads
// sharing each output's sum.
constexpr int kConvMmaMinOutputs = 32;
bool conv1d_step_on_tensor_cores(Floats floats, int in_channels, int out_length);

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t conv1d_step(const Conv1dStep &args, cudaStream_t stream);

}  // namespace personaplex::cuda
