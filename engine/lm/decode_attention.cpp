#include "lm/decode_attention.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/decode_attention.h"
#endif

#include "core/cuda_kernels.h"
#include "core/env_choice.h"
#include "core/error.h"

namespace personaplex::lm {

at::Tensor written_extent(const at::Tensor &written) {
  const at::Tensor rows = written.dim() == 1 ? written.unsqueeze(0) : written;
  const int64_t allocated = rows.size(1);
  const at::Tensor place = at::arange(1, allocated + 1, rows.options().dtype(at::kInt));
  return at::where(rows, place, 0).amax(1);
}

at::Tensor chosen_written_extent(const at::Tensor &written) {
  if (!written.is_cuda() || !env_choice_is("PERSONAPLEX_ATTENTION_SPAN", "written")) return at::Tensor();
  return written_extent(written);
}

std::optional<at::Tensor> fused_decode_attention(const DecodeQuery &in, const KvLayer &kv) {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  namespace cu = personaplex::cuda;
  const bool disabled = !cuda_kernels_enabled();
  const at::Tensor &q = in.q;
  if (disabled || !q.is_cuda() || q.dim() != 4 || q.size(2) != 1) return std::nullopt;
  if (q.scalar_type() != at::kBFloat16 && q.scalar_type() != at::kFloat) return std::nullopt;
  if (!kv.fp8() && kv.keys.scalar_type() != q.scalar_type()) return std::nullopt;
  const int64_t R = q.size(0), H = q.size(1), D = q.size(3), allocated = kv.keys.size(2);
  if (kv.keys.size(0) != R || kv.keys.size(1) != H || kv.keys.size(3) != D) return std::nullopt;
  if (!cu::decode_attention_fits(int(D), int(in.span), int(allocated))) return std::nullopt;
  if (!kv.keys.is_contiguous() || !kv.values.is_contiguous() ||
      (kv.fp8() && (!kv.key_scales.is_contiguous() || !kv.value_scales.is_contiguous())))
    return std::nullopt;
  const at::Tensor written = in.written.contiguous();
  if (written.numel() != R * allocated) return std::nullopt;
  const at::Tensor qc = q.contiguous();
  at::Tensor q_pin, pinned, split;
  if (in.q_pin.defined()) {
    if (!in.pinned.defined()) return std::nullopt;
    q_pin = in.q_pin.to(q.scalar_type()).contiguous();
    pinned = in.pinned.contiguous();
    split = in.split.defined() ? in.split.contiguous() : at::ones({R}, written.options());
    if (pinned.numel() != R * allocated || split.numel() != R) return std::nullopt;
  }
  at::Tensor filled;
  if (in.filled.defined()) {
    if (in.filled.scalar_type() != at::kInt || in.filled.numel() != R || in.filled.device() != q.device())
      return std::nullopt;
    filled = in.filled.contiguous();
  }
  at::Tensor out = at::empty_like(qc);
  const size_t workspace = cu::decode_attention_workspace(int(R), int(H), int(D), int(in.span));
  at::Tensor scratch = workspace ? at::empty({int64_t(workspace)}, q.options().dtype(at::kFloat)) : at::Tensor();
  cu::DecodeAttention a;
  a.q = qc.data_ptr();
  a.q_pin = q_pin.defined() ? q_pin.data_ptr() : nullptr;
  a.keys = kv.keys.data_ptr();
  a.values = kv.values.data_ptr();
  if (kv.fp8()) {
    a.key_scales = kv.key_scales.data_ptr<float>();
    a.value_scales = kv.value_scales.data_ptr<float>();
    a.fp8 = true;
  }
  a.written = written.data_ptr<bool>();
  a.pinned = pinned.defined() ? pinned.data_ptr<bool>() : nullptr;
  a.split = split.defined() ? split.data_ptr<bool>() : nullptr;
  a.filled = filled.defined() ? filled.data_ptr<int>() : nullptr;
  a.out = out.data_ptr();
  a.workspace = scratch.defined() ? scratch.data_ptr<float>() : nullptr;
  a.rows = int(R);
  a.heads = int(H);
  a.head_dim = int(D);
  a.allocated = int(allocated);
  a.span = int(in.span);
  a.pinned_span = int(std::min(in.pinned_span, in.span));
  a.floats = q.scalar_type() == at::kBFloat16 ? cu::AttentionFloats::kBFloat16 : cu::AttentionFloats::kFloat32;
  const cudaError_t e = cu::decode_attention(a, c10::cuda::getCurrentCUDAStream(q.device().index()).stream());
  if (e != cudaSuccess) throw Error(std::string("decode attention kernel: ") + cudaGetErrorString(e));
  return out;
#else
  (void)in;
  (void)kv;
  return std::nullopt;
#endif
}

}  // namespace personaplex::lm
