#include "nn/fused_ops.h"

#include <torch/version.h>

#include "core/cuda_kernels.h"
#include "core/env_choice.h"
#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/layer_norm.h"
#include "cuda/ring_attention.h"
#include "cuda/rms_norm.h"
#include "cuda/rotary.h"
#include "cuda/silu_gate.h"
#include "cuda/step_attention.h"
#endif

namespace personaplex::nn {

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
namespace {

namespace cu = personaplex::cuda;

bool bf16_or_f32(const at::Tensor &x) {
  return x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kFloat;
}

cu::Floats floats_of(const at::Tensor &x) {
  return x.scalar_type() == at::kBFloat16 ? cu::Floats::kBFloat16 : cu::Floats::kFloat32;
}

cudaStream_t stream_of(const at::Tensor &x) { return c10::cuda::getCurrentCUDAStream(x.device().index()).stream(); }

void check(cudaError_t e, const char *kernel) {
  if (e != cudaSuccess) throw Error(std::string(kernel) + " kernel: " + cudaGetErrorString(e));
}

// A step's key and value caches, [B, H, S, D] alike: of qkv's dtype and
// device, contiguous.
bool caches_fit(const at::Tensor &qkv, const at::Tensor &keys, const at::Tensor &values) {
  return keys.dim() == 4 && keys.sizes() == values.sizes() && keys.scalar_type() == qkv.scalar_type() &&
         values.scalar_type() == qkv.scalar_type() && keys.is_contiguous() && values.is_contiguous() &&
         keys.device() == qkv.device() && values.device() == qkv.device();
}

bool norm_takes(const at::Tensor &x, const at::Tensor &alpha) {
  if (!cuda_kernels_take(x) || !bf16_or_f32(x) || x.dim() == 0 || !x.is_contiguous()) return false;
  const int64_t dim = x.size(-1);
  return dim > 0 && x.numel() > 0 && alpha.scalar_type() == at::kFloat && alpha.numel() == dim &&
         alpha.is_contiguous() && alpha.device() == x.device();
}

cu::RmsNorm norm_args(const at::Tensor &x, const at::Tensor &alpha, double eps, const at::Tensor &out) {
  const int64_t dim = x.size(-1);
  cu::RmsNorm a;
  a.x = x.data_ptr();
  a.alpha = alpha.data_ptr<float>();
  a.out = out.data_ptr();
  a.rows = x.numel() / dim;
  a.dim = int(dim);
  a.eps = float(eps);
  a.floats = floats_of(x);
  return a;
}

// The kernels' name for an 8-bit type quantized_rows_type gives.
std::optional<cu::RowQuantized> row_format(at::ScalarType type) {
  if (type == at::kChar) return cu::RowQuantized::kInt8;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  if (type == at::kFloat8_e4m3fn) return cu::RowQuantized::kFp8E4M3;
#endif
  return std::nullopt;
}

// Room for x's rows rounded to `type` (x [..., k]): q [rows, k], scale [rows, 1].
QuantizedRows rows_like(const at::Tensor &x, at::ScalarType type) {
  const int64_t k = x.size(-1), rows = x.numel() / k;
  return {at::empty({rows, k}, x.options().dtype(type)), at::empty({rows, 1}, x.options().dtype(at::kFloat))};
}

}  // namespace

std::optional<at::Tensor> fused_rms_norm(const at::Tensor &x, const at::Tensor &alpha, double eps) {
  if (!norm_takes(x, alpha)) return std::nullopt;
  at::Tensor out = at::empty_like(x);
  check(cu::rms_norm(norm_args(x, alpha, eps, out), stream_of(x)), "RMSNorm");
  return out;
}

std::optional<AddNormed> fused_add_rms_norm(const at::Tensor &x, const at::Tensor &update, const at::Tensor &alpha,
                                            double eps, std::optional<at::ScalarType> rows_type) {
  if (!norm_takes(x, alpha) || update.sizes() != x.sizes() || update.scalar_type() != x.scalar_type() ||
      !update.is_contiguous() || update.device() != x.device())
    return std::nullopt;
  AddNormed r{at::empty_like(x), at::empty_like(x), {}};
  cu::RmsNorm a = norm_args(x, alpha, eps, r.normed);
  a.residual = update.data_ptr();
  a.sum = r.sum.data_ptr();
  const std::optional<cu::RowQuantized> format = rows_type ? row_format(*rows_type) : std::nullopt;
  if (format && x.scalar_type() == at::kBFloat16) {
    QuantizedRows rows = rows_like(x, *rows_type);
    a.q = rows.q.data_ptr();
    a.q_scale = rows.scale.data_ptr<float>();
    a.q_format = *format;
    const cudaError_t e = cu::rms_norm(a, stream_of(x));
    if (e != cudaErrorNotSupported) {
      check(e, "RMSNorm");
      r.rows = std::move(rows);
      return r;
    }
    a.q = nullptr;
    a.q_scale = nullptr;
  }
  check(cu::rms_norm(a, stream_of(x)), "RMSNorm");
  return r;
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
  g.floats = floats_of(h);
  check(cu::silu_gate(g, stream_of(h)), "SiLU gate");
  return out;
}

std::optional<Gated> fused_silu_gate_rows(const at::Tensor &h, at::ScalarType rows_type) {
  const std::optional<cu::RowQuantized> format = row_format(rows_type);
  if (!format || !cuda_kernels_take(h) || h.scalar_type() != at::kBFloat16 || h.dim() == 0 || !h.is_contiguous())
    return std::nullopt;
  const int64_t hidden = h.size(-1) / 2;
  if (hidden == 0 || h.size(-1) % 2 != 0) return std::nullopt;
  std::vector<int64_t> shape = h.sizes().vec();
  shape.back() = hidden;
  Gated r{at::empty(shape, h.options()), {}};
  QuantizedRows rows = rows_like(r.out, rows_type);
  cu::SiluGate g;
  g.h = h.data_ptr();
  g.out = r.out.data_ptr();
  g.rows = h.numel() / h.size(-1);
  g.hidden = hidden;
  g.floats = cu::Floats::kBFloat16;
  g.q = rows.q.data_ptr();
  g.q_scale = rows.scale.data_ptr<float>();
  g.q_format = *format;
  const cudaError_t e = cu::silu_gate(g, stream_of(h));
  if (e == cudaErrorNotSupported) return std::nullopt;
  check(e, "SiLU gate");
  r.rows = std::move(rows);
  return r;
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
  r.floats = floats_of(x);
  check(cu::rotary(r, stream_of(x)), "rotary");
  return out;
}

std::optional<at::Tensor> fused_step_attention(const at::Tensor &qkv, const at::Tensor &keys,
                                               const at::Tensor &values, int64_t slot, int64_t first) {
  if (!cuda_kernels_take(qkv) || !bf16_or_f32(qkv) || qkv.dim() != 3 || qkv.size(1) != 1 || !qkv.is_contiguous())
    return std::nullopt;
  if (!caches_fit(qkv, keys, values)) return std::nullopt;
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), D = keys.size(3);
  if (qkv.size(0) != B || qkv.size(2) != 3 * H * D || B > 65535 ||
      !cu::step_attention_fits(int(D), int(S), int(slot), int(first)))
    return std::nullopt;
  at::Tensor out = at::empty({B, 1, H * D}, qkv.options());
  cu::StepAttention a;
  a.qkv = qkv.data_ptr();
  a.keys = keys.data_ptr();
  a.values = values.data_ptr();
  a.out = out.data_ptr();
  a.rows = int(B);
  a.heads = int(H);
  a.head_dim = int(D);
  a.slots = int(S);
  a.slot = int(slot);
  a.first = int(first);
  a.floats = floats_of(qkv);
  check(cu::step_attention(a, stream_of(qkv)), "step attention");
  return out;
}

std::optional<NormedSum> fused_layer_norm(const at::Tensor &x, const at::Tensor &update, const at::Tensor &scale,
                                          const at::Tensor &weight, const at::Tensor &bias, double eps) {
  if (!cuda_kernels_take(x) || !bf16_or_f32(x) || x.dim() == 0 || !x.is_contiguous() || x.numel() == 0)
    return std::nullopt;
  const int64_t dim = x.size(-1);
  auto vector_like_x = [&](const at::Tensor &v) {
    return !v.defined() || (v.scalar_type() == x.scalar_type() && v.numel() == dim && v.is_contiguous() &&
                            v.device() == x.device());
  };
  if (!cu::layer_norm_fits(int(dim)) || !weight.defined() || !vector_like_x(weight) || !vector_like_x(bias) ||
      !vector_like_x(scale))
    return std::nullopt;
  if (update.defined() && (update.sizes() != x.sizes() || update.scalar_type() != x.scalar_type() ||
                           !update.is_contiguous() || update.device() != x.device()))
    return std::nullopt;
  NormedSum r{update.defined() ? at::empty_like(x) : x, at::empty_like(x)};
  cu::LayerNorm a;
  a.x = x.data_ptr();
  a.update = update.defined() ? update.data_ptr() : nullptr;
  a.scale = update.defined() && scale.defined() ? scale.data_ptr() : nullptr;
  a.sum = update.defined() ? r.sum.data_ptr() : nullptr;
  a.weight = weight.data_ptr();
  a.bias = bias.defined() ? bias.data_ptr() : nullptr;
  a.out = r.normed.data_ptr();
  a.rows = x.numel() / dim;
  a.dim = int(dim);
  a.eps = float(eps);
  a.floats = floats_of(x);
  check(cu::layer_norm(a, stream_of(x)), "LayerNorm");
  return r;
}

bool ring_attention_takes(const at::Tensor &x, int64_t queries, int64_t heads, int64_t head_dim, int64_t slots) {
  return cuda_kernels_take(x) && bf16_or_f32(x) && heads > 0 && head_dim % 2 == 0 && slots < (int64_t(1) << 30) &&
         cu::ring_attention_fits(int(queries), int(head_dim), int(slots), floats_of(x));
}

std::optional<at::Tensor> fused_ring_attention(const at::Tensor &qkv, const at::Tensor &keys, const at::Tensor &values,
                                               const at::Tensor &steps, const at::Tensor &frequencies) {
  if (qkv.dim() != 3 || !qkv.is_contiguous() || !caches_fit(qkv, keys, values)) return std::nullopt;
  const int64_t B = keys.size(0), H = keys.size(1), S = keys.size(2), D = keys.size(3), T = qkv.size(1);
  if (!ring_attention_takes(qkv, T, H, D, S) || qkv.size(0) != B || qkv.size(2) != 3 * H * D || B > 65535)
    return std::nullopt;
  if (steps.scalar_type() != at::kLong || steps.device() != qkv.device() || !steps.is_contiguous() ||
      (steps.numel() != 1 && steps.numel() != B))
    return std::nullopt;
  if (frequencies.defined() && (frequencies.scalar_type() != at::kFloat || frequencies.numel() != D / 2 ||
                                frequencies.device() != qkv.device() || !frequencies.is_contiguous()))
    return std::nullopt;
  at::Tensor out = at::empty({B, T, H * D}, qkv.options());
  cu::RingAttention a;
  a.qkv = qkv.data_ptr();
  a.keys = keys.data_ptr();
  a.values = values.data_ptr();
  a.steps = steps.data_ptr<int64_t>();
  a.steps_per_row = steps.numel() == B && B > 1;
  a.frequencies = frequencies.defined() ? frequencies.data_ptr<float>() : nullptr;
  a.out = out.data_ptr();
  a.rows = int(B);
  a.queries = int(T);
  a.heads = int(H);
  a.head_dim = int(D);
  a.slots = int(S);
  a.floats = floats_of(qkv);
  // cuda/ring_attention_clustered.h unless PERSONAPLEX_RING_ATTENTION=single.
  a.clusters = !env_choice_is("PERSONAPLEX_RING_ATTENTION", "single");
  check(cu::ring_attention(a, stream_of(qkv)), "ring attention");
  return out;
}

#else

std::optional<NormedSum> fused_layer_norm(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                          const at::Tensor &, const at::Tensor &, double) {
  return std::nullopt;
}
bool ring_attention_takes(const at::Tensor &, int64_t, int64_t, int64_t, int64_t) { return false; }
std::optional<at::Tensor> fused_ring_attention(const at::Tensor &, const at::Tensor &, const at::Tensor &,
                                               const at::Tensor &, const at::Tensor &) {
  return std::nullopt;
}
std::optional<at::Tensor> fused_rms_norm(const at::Tensor &, const at::Tensor &, double) { return std::nullopt; }
std::optional<AddNormed> fused_add_rms_norm(const at::Tensor &, const at::Tensor &, const at::Tensor &, double,
                                            std::optional<at::ScalarType>) {
  return std::nullopt;
}
std::optional<at::Tensor> fused_silu_gate(const at::Tensor &) { return std::nullopt; }
std::optional<Gated> fused_silu_gate_rows(const at::Tensor &, at::ScalarType) { return std::nullopt; }
std::optional<at::Tensor> fused_rotary(const at::Tensor &, const at::Tensor &, const at::Tensor &) {
  return std::nullopt;
}
std::optional<at::Tensor> fused_step_attention(const at::Tensor &, const at::Tensor &, const at::Tensor &, int64_t,
                                               int64_t) {
  return std::nullopt;
}

#endif

}  // namespace personaplex::nn
