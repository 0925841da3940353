// One streaming step of a 1-D transposed convolution, on CUDA, in one
// launch: the outputs of the new input, the overlap carried from the last
// step added, the new overlap kept in place, the next layer's ELU given
// along. libtorch takes a transposed convolution (with cuDNN's layout
// changes), a subtraction and an addition for the carry, a copy for the
// kept overlap and an ELU; Mimi's decoder runs four of them a frame (and a
// depthwise one, eight launches there).
//
// Output o of the full result is bias + sum over input channels c (of o's
// group) and taps k = o - t * stride (0 <= k < kernel) of weight[c, o's
// channel, k] * x[c, t]; the first kernel - stride outputs also take the
// kept overlap (which holds the bias once already). Sums in fp32, rounded
// to the activations' dtype once, the carry added (rounded as libtorch's
// subtraction and addition are), the ELU taken of that.
// Plain pointers and a stream: nothing of libtorch.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/floats.h"

namespace personaplex::cuda {

struct ConvTranspose1dStep {
  const void *x = nullptr;  // element t of channel c, row b: x[b * x_batch_stride + c * x_channel_stride + t]
  int64_t x_batch_stride = 0, x_channel_stride = 0;
  const void *weight = nullptr;  // [in_channels, out_channels / groups, kernel], contiguous
  const void *bias = nullptr;    // [out_channels], or null
  // [batch, out_channels, kernel - stride]: the last step's overlap (read
  // where `carry`), and where this step's goes (another buffer of that
  // shape: blocks read the old overlap while others write the new one).
  // Needs length * stride >= kernel - stride.
  const void *partial = nullptr;
  void *partial_out = nullptr;
  bool carry = false;
  void *out = nullptr;      // [batch, out_channels, length * stride], or null
  void *out_elu = nullptr;  // its ELU, the same layout, or null
  float elu_alpha = 1.0f;
  int batch = 0, in_channels = 0, out_channels = 0, groups = 1, kernel = 0, stride = 1, length = 0;
  Floats floats = Floats::kBFloat16;  // input, weights, bias, overlap and outputs
};

// Whether the tensor-core kernel takes these sizes (bf16, no groups, input
// channels a multiple of 16, an input of at least kConvTransposeMmaMinLength
// steps); the others run on CUDA cores, a thread per output period.
constexpr int kConvTransposeMmaMinLength = 32;
bool conv_transpose1d_step_on_tensor_cores(const ConvTranspose1dStep &args);

// The largest stride the CUDA-core kernel takes (a thread keeps a sum per output of a
// stride's period).
constexpr int kConvTransposeMaxStride = 8;

// Launches on `stream` (capturable); returns the launch's error.
cudaError_t conv_transpose1d_step(const ConvTranspose1dStep &args, cudaStream_t stream);

}  // namespace personaplex::cuda
