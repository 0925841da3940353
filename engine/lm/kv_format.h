// How the temporal transformer's KV cache stores keys and values: in the
// model's dtype, or as fp8 (e4m3) bytes with one fp32 scale per key or value
// vector (a head's D values at one slot: scale = max |x| / 448), which halves
// a bf16 cache (3 % more for the scales) so twice the conversations fit.
// The bytes are plain uint8, encoded and decoded here with libtorch's
// arithmetic on any libtorch and device; on CUDA the engine's kernels
// (cuda/kv_fp8_write.h, cuda/decode_attention.h) read and write the same
// bytes in registers.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace personaplex::lm {

enum class KvFormat { kModelDtype, kFp8 };

// "auto" (also "bf16", "model": the model's dtype) or "fp8"; throws Error
// naming these otherwise.
KvFormat parse_kv_format(const std::string &name);
// "auto" or "fp8": the name parse_kv_format reads.
std::string kv_format_name(KvFormat format);

// The largest finite e4m3 value: a vector's largest magnitude maps to it.
constexpr double kE4m3Max = 448.0;

// x [..., D] as e4m3 bytes (uint8 [..., D], rounded to the nearest value)
// and fp32 scales [...] (max |x| / 448 per vector; 0 for a zero vector).
struct Fp8Vectors {
  at::Tensor bytes, scales;
};
Fp8Vectors fp8_encode(const at::Tensor &x);

// bytes [..., D] and scales [...] back to values of `dtype`.
at::Tensor fp8_decode(const at::Tensor &bytes, const at::Tensor &scales, at::ScalarType dtype);

// Copies the codec's tables to `device` now (a cache is made before any
// CUDA graph capture, where a host-to-device copy is not allowed).
void prepare_fp8_codec(const at::Device &device);

}  // namespace personaplex::lm
