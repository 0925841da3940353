#include "mimi/fused_conv_transpose.h"

#include "core/cuda_kernels.h"
#include "core/error.h"
#include "mimi/fused_conv.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/conv_transpose1d_step.h"
#endif

namespace personaplex::mimi {

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS

// The step's arguments but for the buffers.
personaplex::cuda::ConvTranspose1dStep step_sizes(const at::Tensor &x, const ConvSpec &spec) {
  personaplex::cuda::ConvTranspose1dStep a;
  a.x_batch_stride = x.stride(0);
  a.x_channel_stride = x.stride(1);
  a.batch = int(x.size(0));
  a.in_channels = int(spec.in_channels);
  a.out_channels = int(spec.out_channels);
  a.groups = int(spec.groups);
  a.kernel = int(spec.kernel_size);
  a.stride = int(spec.stride);
  a.length = int(x.size(2));
  a.floats = x.scalar_type() == at::kBFloat16 ? personaplex::cuda::Floats::kBFloat16
                                              : personaplex::cuda::Floats::kFloat32;
  return a;
}

bool fused_conv_transpose_takes(const at::Tensor &x, const at::Tensor &weight, const ConvSpec &spec,
                                const ConvTrState &state) {
  if (!cuda_kernels_take(x)) return false;  // before the environment is read: on every CPU step
  const ConvKernels chosen = conv_kernels_chosen();
  const at::ScalarType t = x.scalar_type();
  const int64_t K = spec.kernel_size, S = spec.stride;
  if (chosen == ConvKernels::kNone || (t != at::kFloat && t != at::kBFloat16) ||
      weight.scalar_type() != t || !weight.is_contiguous() || weight.device() != x.device() || x.dim() != 3 ||
      x.size(0) > kMaxConvKernelBatch || x.stride(2) != 1 || state.active.defined() || S < 1 ||
      S > personaplex::cuda::kConvTransposeMaxStride || K < S || K > 4 * S || x.size(2) * S < K - S ||
      (state.partial.defined() && (!state.partial.is_contiguous() || state.partial.scalar_type() != t ||
                                   state.partial.sizes() != at::IntArrayRef{x.size(0), spec.out_channels, K - S})))
    return false;
  if (chosen == ConvKernels::kAll) return true;
  // One row (as mimi/fused_conv.cpp): long inputs on the tensor cores, and
  // the depthwise upsampling (eight launches through libtorch).
  if (x.size(0) != 1) return false;
  const bool depthwise = spec.groups == spec.in_channels && spec.groups == spec.out_channels;
  return depthwise || personaplex::cuda::conv_transpose1d_step_on_tensor_cores(step_sizes(x, spec));
}

ConvOutput fused_conv_transpose(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias,
                                const ConvSpec &spec, ConvTrState &state, const ConvEpilogue &e) {
  const int64_t B = x.size(0), C_out = spec.out_channels, S = spec.stride, K = spec.kernel_size;
  const int64_t frames = x.size(2) * S;
  ConvOutput out;
  if (e.raw || !e.elu) out.raw = at::empty({B, C_out, frames}, x.options());
  if (e.elu) out.elu = at::empty({B, C_out, frames}, x.options());
  // The new overlap into a buffer of its own (blocks still read the old
  // one), then kept in place: the state's address stays what a CUDA graph
  // captured.
  const bool carry = state.partial.defined();
  const at::Tensor next = at::empty({B, C_out, K - S}, x.options());
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  personaplex::cuda::ConvTranspose1dStep a = step_sizes(x, spec);
  a.x = x.data_ptr();
  a.weight = weight.data_ptr();
  a.bias = b.defined() ? b.data_ptr() : nullptr;
  a.partial = carry ? state.partial.data_ptr() : nullptr;
  a.partial_out = next.data_ptr();
  a.carry = carry;
  a.out = out.raw.defined() ? out.raw.data_ptr() : nullptr;
  a.out_elu = out.elu.defined() ? out.elu.data_ptr() : nullptr;
  a.elu_alpha = float(e.alpha);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const cudaError_t err = personaplex::cuda::conv_transpose1d_step(a, stream);
  if (err != cudaSuccess) throw Error(spec.name + ": transposed conv step kernel: " + cudaGetErrorString(err));
  if (carry)
    state.partial.copy_(next);
  else
    state.partial = next;
  return out;
}

#else

bool fused_conv_transpose_takes(const at::Tensor &, const at::Tensor &, const ConvSpec &, const ConvTrState &) {
  return false;
}

ConvOutput fused_conv_transpose(const at::Tensor &, const at::Tensor &, const at::Tensor &, const ConvSpec &,
                                ConvTrState &, const ConvEpilogue &) {
  throw Error("transposed conv step kernel: not in this build");
}

#endif

}  // namespace personaplex::mimi
