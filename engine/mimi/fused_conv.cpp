#include "mimi/fused_conv.h"

#include <cstring>

#include "core/cuda_kernels.h"
#include "core/env_choice.h"
#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/conv1d_step.h"
#endif

namespace personaplex::mimi {

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS

// The layers measured faster than libtorch's launches, at one row
// (docs/performance.md): on an H200 a bf16 frame's encode 0.78 -> 0.71 ms
// and decode 0.84 -> 0.73 ms; at 8 rows the encoder was slower (0.90 ->
// 1.00 ms), so past one row libtorch keeps them.
constexpr ConvKernels kConvKernelsByDefault = ConvKernels::kMeasured;

ConvKernels conv_kernels_chosen() {
  const char *v = env_choice("PERSONAPLEX_CONV_KERNEL");
  if (std::strcmp(v, "0") == 0) return ConvKernels::kNone;
  if (std::strcmp(v, "1") == 0) return ConvKernels::kMeasured;
  if (std::strcmp(v, "all") == 0) return ConvKernels::kAll;
  return kConvKernelsByDefault;
}

bool fused_conv_takes(const at::Tensor &x, const at::Tensor &weight, int64_t groups, int64_t frames) {
  if (!cuda_kernels_take(x)) return false;  // before the environment is read: on every CPU step
  const ConvKernels chosen = conv_kernels_chosen();
  const at::ScalarType t = x.scalar_type();
  if (chosen == ConvKernels::kNone || (t != at::kFloat && t != at::kBFloat16) ||
      weight.scalar_type() != t || groups != 1 || x.dim() != 3 || x.size(0) > kMaxConvKernelBatch ||
      x.stride(2) != 1 || !weight.is_contiguous() || weight.device() != x.device())
    return false;
  if (chosen == ConvKernels::kAll) return true;
  // One row; long outputs: on the tensor cores, or a thread an output for
  // the first layer's few channels.
  if (x.size(0) != 1) return false;
  const int64_t C_in = weight.size(1);
  const auto floats = t == at::kBFloat16 ? personaplex::cuda::Floats::kBFloat16 : personaplex::cuda::Floats::kFloat32;
  return personaplex::cuda::conv1d_step_on_tensor_cores(floats, int(C_in), int(frames)) ||
         (C_in < 16 && frames >= personaplex::cuda::kConvMmaMinOutputs);
}

ConvOutput fused_conv(const at::Tensor &x, const at::Tensor &previous, const at::Tensor &weight,
                      const at::Tensor &bias, const ConvEpilogue &e, int64_t stride, int64_t dilation,
                      int64_t frames) {
  const int64_t B = x.size(0), C_out = weight.size(0);
  ConvOutput out;
  if (e.raw || !e.elu) out.raw = at::empty({B, C_out, frames}, x.options());
  if (e.elu) out.elu = at::empty({B, C_out, frames}, x.options());
  const at::Tensor skip = e.skip.defined() ? e.skip.contiguous() : e.skip;
  const at::Tensor b = bias.defined() ? bias.contiguous() : bias;
  personaplex::cuda::Conv1dStep a;
  a.previous = previous.size(2) > 0 ? previous.data_ptr() : nullptr;
  a.previous_length = int(previous.size(2));
  a.x = x.data_ptr();
  a.x_batch_stride = x.stride(0);
  a.x_channel_stride = x.stride(1);
  a.weight = weight.data_ptr();
  a.bias = b.defined() ? b.data_ptr() : nullptr;
  a.skip = skip.defined() ? skip.data_ptr() : nullptr;
  a.out = out.raw.defined() ? out.raw.data_ptr() : nullptr;
  a.out_elu = out.elu.defined() ? out.elu.data_ptr() : nullptr;
  a.elu_alpha = float(e.alpha);
  a.batch = int(B);
  a.in_channels = int(weight.size(1));
  a.out_channels = int(C_out);
  a.kernel = int(weight.size(2));
  a.stride = int(stride);
  a.dilation = int(dilation);
  a.out_length = int(frames);
  a.floats = x.scalar_type() == at::kBFloat16 ? personaplex::cuda::Floats::kBFloat16
                                              : personaplex::cuda::Floats::kFloat32;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.device().index()).stream();
  const cudaError_t err = personaplex::cuda::conv1d_step(a, stream);
  if (err != cudaSuccess) throw Error(std::string("conv1d step kernel: ") + cudaGetErrorString(err));
  return out;
}

#else

ConvKernels conv_kernels_chosen() { return ConvKernels::kNone; }

bool fused_conv_takes(const at::Tensor &, const at::Tensor &, int64_t, int64_t) { return false; }

ConvOutput fused_conv(const at::Tensor &, const at::Tensor &, const at::Tensor &, const at::Tensor &,
                      const ConvEpilogue &, int64_t, int64_t, int64_t) {
  throw Error("conv1d step kernel: not in this build");
}

#endif

}  // namespace personaplex::mimi
