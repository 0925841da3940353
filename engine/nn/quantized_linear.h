// Linear-layer weights kept in the model dtype or in 8 bits per value, to
// fit a large model in less device memory.
//
// Quantized formats are symmetric with one fp32 scale per output row
// (weight ~ q * scale[row]):
// - int8: q in [-127, 127]. On CUDA, in a build with the engine's kernels,
//   up to 16 rows of x (a step's activations) go through a weight-only
//   kernel that reads the bytes once and widens them in registers
//   (cuda/weight_only_gemv.h). 17 or more rows of bf16 x against large
//   (8 Mi values or more: the temporal transformer's) or wide (n >= 2k)
//   weights are quantized per row to int8 by one kernel, multiplied by the
//   GPU library's int8 tensor-core matmul and scaled back
//   (cuda/row_quantize.h; sizes multiples of 16, libtorch 2.5+); the other
//   products take the weight-only kernel's tensor-core twin
//   (cuda/weight_only_gemm.h) up to 128 rows. Otherwise computed as
//   linear(x, q.to(x's dtype)) * scale: it saves memory, not time.
// - fp8: q in float8 e4m3fn. On CUDA as int8, with a row-wise scaled fp8
//   matmul (output in x's dtype; a GPU of compute capability 8.9 or newer)
//   and the tensor-core kernel up to 64 rows, the matmul past that.
//   Elsewhere computed as int8 is. Needs a libtorch with float8 (2.1+).
// - PERSONAPLEX_8BIT_GEMM=weight-only keeps every product the kernels take
//   on them (exact to the stored weights, slower past 16 rows);
//   =activations takes the matmul for every product past 16 rows. The
//   activations' rounding (per row, over its largest value) adds to the
//   weights': measured in docs/performance.md.
// - bf16 (as loaded): on CUDA with the engine's kernels, one or two rows of
//   bf16 x take the same matrix-vector kernel; more, cuBLAS.
// Every path reads nothing from the host, so it can be captured in a CUDA
// graph.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

namespace personaplex::nn {

enum class WeightFormat { kAsLoaded, kInt8, kFp8 };

// "bf16" (also "auto", "none": the model dtype, as loaded), "int8", "fp8";
// throws Error listing these names otherwise.
WeightFormat parse_weight_format(const std::string &name);
// "bf16", "int8" or "fp8": the name parse_weight_format reads.
std::string weight_format_name(WeightFormat format);

// Whether this libtorch has float8 types (needed by WeightFormat::kFp8).
bool float8_available();

// Throws Error saying why `format` cannot run on `device` (fp8 without
// float8 in this libtorch, or on a GPU without row-wise fp8 matmul). On CUDA
// it runs one tiny fp8 matmul to find out.
void check_weight_format(WeightFormat format, const at::Device &device, at::ScalarType dtype);

// One linear layer's weight [out, in]: in the model dtype (scale undefined)
// or quantized (int8 / float8_e4m3fn, scale fp32 [out]).
struct LinearWeight {
  at::Tensor weight;
  at::Tensor scale;

  LinearWeight() = default;
  // A plain weight is a linear weight as it is.
  LinearWeight(at::Tensor w) : weight(std::move(w)) {}  // NOLINT(google-explicit-constructor)

  bool quantized() const { return scale.defined(); }
  // Bytes of the weight and its scale.
  int64_t nbytes() const;
};

// `w` [out, in] (any float dtype, any device) in `format`, on w's device;
// kAsLoaded returns it unchanged. `name` goes into error messages (fp8 on
// CUDA needs both sizes to be multiples of 16).
LinearWeight quantize(const at::Tensor &w, WeightFormat format, const std::string &name = "");

// The weight as floats of `dtype` (quantized ones scaled back).
at::Tensor dequantize(const LinearWeight &w, at::ScalarType dtype);

// x [..., in] -> [..., out], in x's dtype.
at::Tensor linear(const at::Tensor &x, const LinearWeight &w);

// A batch's activations rounded to 8 bits row by row, as the activations'
// path above rounds them: q [rows, in] (int8 or float8_e4m3fn), scale fp32
// [rows, 1] (x ~ q * scale).
struct QuantizedRows {
  at::Tensor q, scale;
};
// The 8-bit type linear(x, w) rounds `rows` rows of x (of dtype x_type, on
// w's device) to on the activations' path; nothing where it takes another
// path (or PERSONAPLEX_ROW_QUANTIZE=separate asks for the product's own
// launch). Lets the launch that writes x write them too (nn/fused_ops.h),
// one launch fewer.
std::optional<at::ScalarType> quantized_rows_type(const LinearWeight &w, int64_t rows, at::ScalarType x_type);
// linear(x, w), the same result, taking x's rows from `rows` where that
// path runs and they are of its type and x's sizes (they must be x's,
// rounded as it rounds them); otherwise as linear(x, w).
at::Tensor linear(const at::Tensor &x, const LinearWeight &w, const QuantizedRows &rows);

// The parts linear(x, w) runs its product of `rows` rows of x (of dtype
// x_type) in, side by side over slices of k: more than 1 for an 8-bit
// product on the activations' path whose output tiles would leave most of
// the GPU's SMs idle, when PERSONAPLEX_8BIT_SPLIT_K allows more than 1 (by
// default 1: on an H100 it bought nothing in the batched step); 1 for every
// other product. For tools and tests.
int64_t product_parts(const LinearWeight &w, int64_t rows, at::ScalarType x_type);

// A gated MLP's input and its SiLU gate in one launch: with w [2 * hidden,
// in] (the a and b halves), silu(a) * b [..., hidden], the same bits as
// linear(x, w) followed by fused_silu_gate (nn/fused_ops.h). Nothing where
// the matrix-vector kernel does not take x and w (it takes one or two rows
// on CUDA; cuda/weight_only_gemv.h) or PERSONAPLEX_SILU_GATE=separate asks
// for the two launches.
std::optional<at::Tensor> linear_silu_gate(const at::Tensor &x, const LinearWeight &w);

}  // namespace personaplex::nn
