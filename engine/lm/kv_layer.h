// One layer's keys and values in a KV cache, whatever its KvFormat: what
// writes a step's keys into their slots and what reads them back for
// libtorch's attention, so the caches and the steps never look at bytes.
#pragma once

#include <ATen/ATen.h>

#include "lm/kv_format.h"

namespace personaplex::lm {

struct KvLayer {
  at::Tensor keys, values;              // [B, H, slots, D]: model dtype, or e4m3 bytes
  at::Tensor key_scales, value_scales;  // fp32 [B, H, slots] with fp8 bytes, else undefined

  // Zeros: [batch, heads, slots, head_dim] in `format` (`options`: the model's dtype and device).
  static KvLayer zeros(int64_t batch, int64_t heads, int64_t slots, int64_t head_dim, KvFormat format,
                       const at::TensorOptions &options);

  bool fp8() const { return key_scales.defined(); }
  KvLayer rows(int64_t first, int64_t n) const;   // views of rows first..first+n-1
  KvLayer slots(int64_t first, int64_t n) const;  // views of slots first..first+n-1
  KvLayer clone() const;
  void copy_(const KvLayer &from) const;  // same sizes and format
  void zero_() const;

  // k, v [B, H, 1, D] into each row's slot (int64 [B], on the device): one
  // scatter per tensor, or one kernel for fp8 on CUDA. Capturable.
  void write_rows(const at::Tensor &slots, const at::Tensor &k, const at::Tensor &v) const;
  // k, v [B, H, T, D] into slots first..first+T-1.
  void write_range(int64_t first, const at::Tensor &k, const at::Tensor &v) const;
  // The keys or values as `dtype` (decoded when fp8).
  at::Tensor read_keys(at::ScalarType dtype) const;
  at::Tensor read_values(at::ScalarType dtype) const;
};

}  // namespace personaplex::lm
