#include "lm/kv_layer.h"


#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/kv_fp8_write.h"
#include "cuda/kv_write.h"
#endif

#include "core/cuda_kernels.h"
#include "core/error.h"

namespace personaplex::lm {
namespace {

// Each row's [B, H, 1, ...] entry into its slot of `cache` [B, H, slots, ...].
void scatter_rows(const at::Tensor &cache, const at::Tensor &slots, const at::Tensor &x) {
  std::vector<int64_t> view(x.dim(), 1);
  view[0] = x.size(0);
  cache.scatter_(2, slots.view(view).expand(x.sizes()), x);
}

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
// The fp8 write as one kernel; false where it does not take these tensors.
bool kernel_write(const KvLayer &l, const at::Tensor &slots, const at::Tensor &k, const at::Tensor &v) {
  const bool disabled = !cuda_kernels_enabled();
  if (disabled || !k.is_cuda() || slots.dim() != 1 || slots.scalar_type() != at::kLong) return false;
  if (k.scalar_type() != at::kBFloat16 && k.scalar_type() != at::kFloat) return false;
  if (!l.keys.is_contiguous() || !l.values.is_contiguous() || !l.key_scales.is_contiguous() ||
      !l.value_scales.is_contiguous())
    return false;
  const at::Tensor kc = k.contiguous(), vc = v.to(k.scalar_type()).contiguous();
  personaplex::cuda::KvFp8Write a;
  a.k = kc.data_ptr();
  a.v = vc.data_ptr();
  a.slots = slots.data_ptr<int64_t>();
  a.slot_stride = slots.stride(0);
  a.keys = l.keys.data_ptr<uint8_t>();
  a.values = l.values.data_ptr<uint8_t>();
  a.key_scales = l.key_scales.data_ptr<float>();
  a.value_scales = l.value_scales.data_ptr<float>();
  a.rows = int(l.keys.size(0));
  a.heads = int(l.keys.size(1));
  a.allocated = int(l.keys.size(2));
  a.head_dim = int(l.keys.size(3));
  a.floats = k.scalar_type() == at::kBFloat16 ? personaplex::cuda::KvFloats::kBFloat16
                                              : personaplex::cuda::KvFloats::kFloat32;
  const cudaError_t e = personaplex::cuda::kv_fp8_write(a, c10::cuda::getCurrentCUDAStream(k.device().index()).stream());
  if (e != cudaSuccess) throw Error(std::string("fp8 KV write kernel: ") + cudaGetErrorString(e));
  return true;
}

// The copy into a cache in the model's dtype as one kernel; false where it
// does not take these tensors.
bool kernel_copy(const KvLayer &l, const at::Tensor &slots, const at::Tensor &k, const at::Tensor &v) {
  if (!cuda_kernels_enabled() || !k.is_cuda() || slots.dim() != 1 || slots.scalar_type() != at::kLong) return false;
  if (k.scalar_type() != l.keys.scalar_type() || v.scalar_type() != l.keys.scalar_type() || k.dim() != 4 ||
      v.sizes() != k.sizes() || k.size(2) != 1 || k.stride(3) != 1 || v.stride(3) != 1)
    return false;
  if (!l.keys.is_contiguous() || !l.values.is_contiguous() || k.size(0) != l.keys.size(0) ||
      k.size(1) != l.keys.size(1) || k.size(3) != l.keys.size(3) || slots.size(0) != k.size(0) ||
      k.size(0) > 65535)
    return false;
  personaplex::cuda::KvWrite a;
  a.k = k.data_ptr();
  a.v = v.data_ptr();
  a.k_row_stride = k.stride(0);
  a.k_head_stride = k.stride(1);
  a.v_row_stride = v.stride(0);
  a.v_head_stride = v.stride(1);
  a.slots = slots.data_ptr<int64_t>();
  a.slot_stride = slots.stride(0);
  a.keys = l.keys.data_ptr();
  a.values = l.values.data_ptr();
  a.rows = int(k.size(0));
  a.heads = int(k.size(1));
  a.head_dim = int(k.size(3));
  a.allocated = int(l.keys.size(2));
  a.element_bytes = int(k.element_size());
  const cudaError_t e = personaplex::cuda::kv_write(a, c10::cuda::getCurrentCUDAStream(k.device().index()).stream());
  if (e != cudaSuccess) throw Error(std::string("KV write kernel: ") + cudaGetErrorString(e));
  return true;
}
#endif

}  // namespace

KvLayer KvLayer::zeros(int64_t batch, int64_t heads, int64_t slots, int64_t head_dim, KvFormat format,
                       const at::TensorOptions &options) {
  KvLayer l;
  if (format == KvFormat::kFp8) {
    prepare_fp8_codec(options.device());
    l.keys = at::zeros({batch, heads, slots, head_dim}, options.dtype(at::kByte));
    l.values = at::zeros_like(l.keys);
    l.key_scales = at::zeros({batch, heads, slots}, options.dtype(at::kFloat));
    l.value_scales = at::zeros_like(l.key_scales);
  } else {
    l.keys = at::zeros({batch, heads, slots, head_dim}, options);
    l.values = at::zeros_like(l.keys);
  }
  return l;
}

// The same function of each of the layer's tensors (the scales too, when fp8).
template <typename F>
static KvLayer each(const KvLayer &l, F f) {
  return {f(l.keys), f(l.values), l.fp8() ? f(l.key_scales) : at::Tensor(), l.fp8() ? f(l.value_scales) : at::Tensor()};
}

KvLayer KvLayer::rows(int64_t first, int64_t n) const {
  return each(*this, [&](const at::Tensor &t) { return t.narrow(0, first, n); });
}

KvLayer KvLayer::slots(int64_t first, int64_t n) const {
  return each(*this, [&](const at::Tensor &t) { return t.narrow(2, first, n); });
}

KvLayer KvLayer::clone() const {
  return each(*this, [](const at::Tensor &t) { return t.clone(); });
}

void KvLayer::copy_(const KvLayer &from) const {
  if (from.fp8() != fp8()) throw Error("KV cache: a copy between caches of different formats");
  keys.copy_(from.keys);
  values.copy_(from.values);
  if (fp8()) {
    key_scales.copy_(from.key_scales);
    value_scales.copy_(from.value_scales);
  }
}

void KvLayer::zero_() const {
  keys.zero_();
  values.zero_();
  if (fp8()) {
    key_scales.zero_();
    value_scales.zero_();
  }
}

void KvLayer::write_rows(const at::Tensor &slots, const at::Tensor &k, const at::Tensor &v) const {
  if (!fp8()) {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
    if (kernel_copy(*this, slots, k, v)) return;
#endif
    scatter_rows(keys, slots, k.to(keys.scalar_type()));
    scatter_rows(values, slots, v.to(values.scalar_type()));
    return;
  }
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  if (kernel_write(*this, slots, k, v)) return;
#endif
  const Fp8Vectors ke = fp8_encode(k), ve = fp8_encode(v);
  scatter_rows(keys, slots, ke.bytes);
  scatter_rows(values, slots, ve.bytes);
  scatter_rows(key_scales, slots, ke.scales);
  scatter_rows(value_scales, slots, ve.scales);
}

void KvLayer::write_range(int64_t first, const at::Tensor &k, const at::Tensor &v) const {
  const KvLayer to = slots(first, k.size(2));
  if (!fp8()) {
    to.keys.copy_(k);
    to.values.copy_(v);
    return;
  }
  const Fp8Vectors ke = fp8_encode(k), ve = fp8_encode(v);
  to.keys.copy_(ke.bytes);
  to.values.copy_(ve.bytes);
  to.key_scales.copy_(ke.scales);
  to.value_scales.copy_(ve.scales);
}

at::Tensor KvLayer::read_keys(at::ScalarType dtype) const {
  return fp8() ? fp8_decode(keys, key_scales, dtype) : keys.to(dtype);
}

at::Tensor KvLayer::read_values(at::ScalarType dtype) const {
  return fp8() ? fp8_decode(values, value_scales, dtype) : values.to(dtype);
}

}  // namespace personaplex::lm
