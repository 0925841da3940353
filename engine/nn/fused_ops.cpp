#include "nn/fused_ops.h"

#include "core/cuda_kernels.h"
#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/rms_norm.h"
#include "cuda/rotary.h"
#include "cuda/silu_gate.h"
#endif

namespace personaplex::nn {

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
namespace {

namespace cu = personaplex::cuda;

bool bf16_or_f32(const at::Tensor &x) {
  return x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat;
}

cudaStream_t stream_of(const at::Tensor &x) { return c10::cuda::getCurrentCUDAStream(x.device().index()).stream(); }

void check(cudaError_t e, const char *kernel) {
  if (e != cudaSuccess) throw Error(std::string(kernel) + " kernel: " + cudaGetErrorString(e));
}

}  // namespace

std::optional<at::Tensor> fused_rms_norm(const at::Tensor &x, const at::Tensor &alpha, double eps) {
  if (!cuda_kernels_take(x) || !bf16_or_f32(x) || x.dim() == 0 || !x.is_contiguous()) return std::nullopt;
  const int64_t dim = x.size(-1);
  if (dim == 0 || x.numel() == 0 || alpha.scalar_type() != at::kFloat || alpha.numel() != dim ||
      !alpha.is_contiguous() || alpha.device() != x.device())
    return std::nullopt;
  at::Tensor out = at::empty_like(x);
  cu::RmsNorm a;
  a.x = x.data_ptr();
  a.alpha = alpha.data_ptr<float>();
  a.out = out.data_ptr();
  a.rows = x.numel() / dim;
  a.dim = int(dim);
  a.eps = float(eps);
  a.floats = x.scalar_type() == at::kBFloat16 ? cu::NormFloats::kBFloat16 : cu::NormFloats::kFloat32;
  check(cu::rms_norm(a, stream_of(x)), "RMSNorm");
  return out;
}

std::optional<at::Tensor> fused_silu_gate(const at::Tensor &h) {
  if (!cuda_kernels_take(h) || !bf16_or_f32(h) || h.dim() == 0 || !h.is_contiguous()) return std::nullopt;
  const int64_t hidden = h.size(-1) / 2;
  if (hidden == 0 || h.size(-1) % 2 != 0) return std::nullopt;
  std::vector<int64_t> shape = h.sizes().vec();
  shape.back() = hidden;
  at::Tensor out = at::empty(shape, h.options());
  cu::SiluGate g;
  g.h = h.data_ptr();
  g.out = out.data_ptr();
  g.rows = h.numel() / h.size(-1);
  g.hidden = hidden;
  g.floats = h.scalar_type() == at::kBFloat16 ? cu::GateFloats::kBFloat16 : cu::GateFloats::kFloat32;
  check(cu::silu_gate(g, stream_of(h)), "SiLU gate");
  return out;
}

std::optional<at::Tensor> fused_rotary(const at::Tensor &x, const at::Tensor &cos, const at::Tensor &sin) {
  if (!cuda_kernels_take(x) || !bf16_or_f32(x) || x.dim() == 0 || x.dim() > cu::kRotaryDims) return std::nullopt;
  if (x.size(-1) % 2 != 0 || x.numel() == 0) return std::nullopt;
  if (cos.scalar_type() != at::kFloat || sin.scalar_type() != at::kFloat || cos.device() != x.device() ||
      sin.device() != x.device() || cos.sizes() != sin.sizes() || cos.strides() != sin.strides())
    return std::nullopt;
  std::vector<int64_t> pairs = x.sizes().vec();
  pairs.back() /= 2;
  at::Tensor c, s;
  try {
    c = cos.expand(pairs);
    s = sin.expand(pairs);
  } catch (const c10::Error &) {
    return std::nullopt;  // does not broadcast
  }
  cu::Rotary r;
  const int64_t pad = cu::kRotaryDims - x.dim();
  for (int64_t d = 0; d < cu::kRotaryDims; ++d) {
    r.size[d] = d < pad ? 1 : pairs[d - pad];
    r.x_stride[d] = d < pad ? 0 : x.stride(d - pad);
    r.angle_stride[d] = d < pad ? 0 : c.stride(d - pad);
  }
  at::Tensor out = at::empty(x.sizes(), x.options().memory_format(at::MemoryFormat::Contiguous));
  r.x = x.data_ptr();
  r.cos = c.data_ptr<float>();
  r.sin = s.data_ptr<float>();
  r.out = out.data_ptr();
  r.floats = x.scalar_type() == at::kBFloat16 ? cu::RotaryFloats::kBFloat16 : cu::RotaryFloats::kFloat32;
  check(cu::rotary(r, stream_of(x)), "rotary");
  return out;
}

#else

std::optional<at::Tensor> fused_rms_norm(const at::Tensor &, const at::Tensor &, double) { return std::nullopt; }
std::optional<at::Tensor> fused_silu_gate(const at::Tensor &) { return std::nullopt; }
std::optional<at::Tensor> fused_rotary(const at::Tensor &, const at::Tensor &, const at::Tensor &) {
  return std::nullopt;
}

#endif

}  // namespace personaplex::nn
