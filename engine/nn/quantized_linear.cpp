#include "nn/quantized_linear.h"

#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <vector>

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAStream.h>

#include "core/thread_stream.h"
#include "cuda/product_sum.h"
#include "cuda/row_quantize.h"
#include "cuda/weight_only_gemm.h"
#include "cuda/weight_only_gemv.h"
#endif

#include "core/cuda_kernels.h"
#include "core/env_choice.h"
#include "core/error.h"
#include "io/safetensors.h"

// float8 types arrived in libtorch 2.1. _scaled_mm took its present form
// (one tensor out, required scales, row-wise scales as [M, 1] and [1, N])
// over 2.4 and 2.5: the fp8 matmul path needs 2.5.
#define PERSONAPLEX_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))
#define PERSONAPLEX_FLOAT8 PERSONAPLEX_TORCH_AT_LEAST(2, 1)
#define PERSONAPLEX_ROWWISE_FP8_MM PERSONAPLEX_TORCH_AT_LEAST(2, 5)
// at::_int_mm (int8 x int8 -> int32 on cuBLASLt) is in every 2.2 and later.
#define PERSONAPLEX_INT_MM PERSONAPLEX_TORCH_AT_LEAST(2, 2)

namespace personaplex::nn {
namespace {

constexpr double kInt8Max = 127.0;
constexpr double kFp8Max = 448.0;  // the largest finite float8 e4m3fn
constexpr double kTiny = 1e-12;    // an all-zero row still gets a positive scale
// Rows of bf16 x that bf16 weights take through the matrix-vector kernel (a
// step at batch 1 or 2); more go to cuBLAS, whose products read each weight
// once for all rows.
constexpr int64_t kPlainGemvMaxRows = 2;
// Outputs of the widest bf16 product it takes. Narrower products (the depth
// transformer's, the temporal attention output and MLP output) leave warps
// idle at one column each, which the kernel's split fills (H200: 3-5 us
// against cuBLAS's 10-17 us for the depth transformer, 12.7 against 19.0 us
// for 4096 x 4096); wider ones read faster through cuBLAS (qkv 29.2 against
// 30.5 us, the MLP input 46.7 against 51.6).
constexpr int64_t kPlainGemvMaxColumns = 8192;

// Per-row largest magnitude of a matrix [rows, n]: fp32 [rows, 1], in one
// reduction (no temporary of m's size; it also runs for every fp8 linear).
at::Tensor row_amax(const at::Tensor &m) {
  return at::linalg_vector_norm(m, INFINITY, {-1}, /*keepdim=*/true, at::kFloat).clamp_min_(kTiny);
}

#if PERSONAPLEX_FLOAT8
LinearWeight quantize_fp8(const at::Tensor &w, const std::string &name) {
  // cuBLAS's fp8 matmul takes only sizes that are multiples of 16.
  if (w.is_cuda() && (w.size(0) % 16 != 0 || w.size(1) % 16 != 0))
    throw Error("fp8 weights on CUDA need sizes that are multiples of 16, but " +
                (name.empty() ? std::string("a weight") : "'" + name + "'") + " is " + shape_string(w.sizes()));
  LinearWeight q;
  at::Tensor scale = row_amax(w).div_(kFp8Max);
  q.weight = (w / scale).to(at::kFloat8_e4m3fn);  // w / scale: fp32, |values| <= 448
  q.scale = scale.view({-1});
  return q;
}
#endif

#if PERSONAPLEX_ROWWISE_FP8_MM
std::string first_line(const std::exception &e) {
  const auto *torch_error = dynamic_cast<const c10::Error *>(&e);
  std::string m = torch_error ? torch_error->what_without_backtrace() : e.what();
  return m.substr(0, m.find('\n'));
}

// x quantized per row (its own scale each, computed on the device), then
// one scaled fp8 matmul against the column-major view of the weight.
at::Tensor fp8_linear(const at::Tensor &x, const LinearWeight &w) {
  at::Tensor rows = x.reshape({-1, x.size(-1)});
  at::Tensor x_scale = row_amax(rows).div_(kFp8Max);        // fp32 [M, 1]
  at::Tensor xq = (rows / x_scale).to(at::kFloat8_e4m3fn);  // |values| <= 448
  at::Tensor y = at::_scaled_mm(xq, w.weight.t(), x_scale, w.scale.view({1, -1}), /*bias=*/{},
                                /*scale_result=*/{}, x.scalar_type(), /*use_fast_accum=*/false);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = w.weight.size(0);
  return y.view(shape);
}
#endif

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
// What the weight-only kernels see of x and w: their types and sizes;
// nothing when no kernel takes these dtypes.
struct GemvCall {
  personaplex::cuda::GemvFloats floats;
  personaplex::cuda::GemvWeights weights;
  int64_t rows, n, k;
};

std::optional<GemvCall> gemv_call(const at::Tensor &x, const LinearWeight &w) {
  if (!cuda_kernels_enabled() || x.dim() == 0) return std::nullopt;
  using personaplex::cuda::GemvFloats;
  using personaplex::cuda::GemvWeights;
  GemvCall c{};
  if (x.scalar_type() == at::kBFloat16) c.floats = GemvFloats::kBFloat16;
  else if (x.scalar_type() == at::kFloat) c.floats = GemvFloats::kFloat32;
  else return std::nullopt;
  if (w.weight.scalar_type() == at::kChar) c.weights = GemvWeights::kInt8;
#if PERSONAPLEX_FLOAT8
  else if (w.weight.scalar_type() == at::kFloat8_e4m3fn) c.weights = GemvWeights::kFp8E4M3;
#endif
  else if (w.weight.scalar_type() == at::kBFloat16 && c.floats == GemvFloats::kBFloat16 && !w.quantized())
    c.weights = GemvWeights::kBFloat16;
  else return std::nullopt;
  c.k = x.size(-1);
  c.n = w.weight.size(0);
  if (c.k == 0 || w.weight.size(1) != c.k || !w.weight.is_contiguous()) return std::nullopt;
  c.rows = x.numel() / c.k;
  if (c.weights == GemvWeights::kBFloat16 && (c.rows > kPlainGemvMaxRows || c.n > kPlainGemvMaxColumns))
    return std::nullopt;
  return c;
}

void check_launch(cudaError_t e) {
  if (e != cudaSuccess) throw Error(std::string("weight-only product kernel: ") + cudaGetErrorString(e));
}

// The row scales as the kernels read them (fp32, contiguous); undefined for
// weights as loaded.
at::Tensor kernel_scale(const LinearWeight &w) {
  return w.quantized() ? w.scale.to(at::kFloat).contiguous() : at::Tensor();
}

cudaStream_t stream_of(const at::Tensor &x) { return c10::cuda::getCurrentCUDAStream(x.device().index()).stream(); }

// x's rows with the last size `n`.
std::vector<int64_t> sizes_with_last(const at::Tensor &x, int64_t n) {
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = n;
  return sizes;
}

// The most rows of x fp8 weights take on the tensor-core kernel.
constexpr int64_t kFp8GemmMaxRows = 64;
// The fewest weights (n * k) for which the activations' 8-bit matmul beats
// the weight-only kernel at 17-64 rows: the temporal transformer's products
// (16-88 Mi values in the released model). Smaller products gain only where
// they are wide (n >= 2k: the depformer's q/k/v and MLP input products,
// whose n spreads the matmul's tiles over the GPU); the narrow ones (its
// attention and MLP outputs, the input from the temporal transformer) stay
// on the kernel, which splits k (measured on H100 and H200,
// docs/performance.md).
constexpr int64_t kActivationQuantizedMinWeights = int64_t(1) << 23;

// Whether `rows` (past 16) of x against 8-bit weights [n, k] go to the 8-bit
// matmul on per-row quantized activations: fp8 past the tensor-core
// kernel's rows always; large or wide products by default, int8 and fp8
// alike; every product with PERSONAPLEX_8BIT_GEMM=activations, none (where
// the kernel takes them) with =weight-only. Sizes the matmul does not take
// (not multiples of 16: int8 only, fp8 weights are made so) stay on the
// kernel.
bool takes_activations_path(bool int8, int64_t rows, int64_t n, int64_t k) {
#if PERSONAPLEX_INT_MM && PERSONAPLEX_ROWWISE_FP8_MM
  if (n % 16 != 0 || k % 16 != 0) return false;
  if (!int8 && rows > kFp8GemmMaxRows) return true;
  if (env_choice_is("PERSONAPLEX_8BIT_GEMM", "weight-only")) return false;
  if (env_choice_is("PERSONAPLEX_8BIT_GEMM", "activations")) return true;
  return n * k >= kActivationQuantizedMinWeights || n >= 2 * k;
#else
  (void)int8, (void)rows, (void)n, (void)k;
  return false;  // no 8-bit matmuls in this libtorch: the kernel takes what it can
#endif
}

// Up to 16 rows against 8-bit weights, up to 128 rows of bf16 x against
// int8 ones (64 against fp8 ones), and one or two rows of bf16 x against
// bf16 weights: the weight-only kernels (the weights read once, widened in
// registers).
// Nothing when the kernel does not take these tensors (or
// PERSONAPLEX_NO_CUDA_KERNELS is set, to compare against libtorch's path).
std::optional<at::Tensor> gemv_linear(const at::Tensor &x, const LinearWeight &w) {
  using personaplex::cuda::GemvFloats;
  using personaplex::cuda::GemvWeights;
  const std::optional<GemvCall> c = gemv_call(x, w);
  if (!c) return std::nullopt;
  const auto [floats, weights, rows, n, k] = *c;
  // Past 16 rows: 8-bit weights on the tensor-core kernel where the
  // activations' matmul does not take them (takes_activations_path).
  const bool gemm = rows > personaplex::cuda::kGemvMaxRows;
  const bool eight_bit = weights == GemvWeights::kInt8 || weights == GemvWeights::kFp8E4M3;
  if (gemm && (rows > personaplex::cuda::kGemmMaxRows || floats != GemvFloats::kBFloat16 || !eight_bit ||
               takes_activations_path(weights == GemvWeights::kInt8, rows, n, k)))
    return std::nullopt;
  const at::Tensor x2 = x.reshape({rows, k}).contiguous();
  const at::Tensor scale = kernel_scale(w);
  const float *scale_data = scale.defined() ? scale.data_ptr<float>() : nullptr;
  at::Tensor y = at::empty({rows, n}, x.options());
  const cudaStream_t stream = stream_of(x);
  if (gemm) {
    // Its k split's parts in fp32.
    if (!personaplex::cuda::weight_only_gemm_fits(rows, n, k, x2.data_ptr(), w.weight.data_ptr()))
      return std::nullopt;
    at::Tensor parts =
        at::empty({personaplex::cuda::weight_only_gemm_workspace(rows, n, k)}, x.options().dtype(at::kFloat));
    check_launch(personaplex::cuda::weight_only_gemm(x2.data_ptr(), w.weight.data_ptr(), scale_data, y.data_ptr(),
                                                     parts.data_ptr<float>(), rows, n, k, weights, stream));
  } else {
    if (!personaplex::cuda::weight_only_gemv_fits(rows, n, k, x2.data_ptr(), w.weight.data_ptr(), y.data_ptr()))
      return std::nullopt;
    check_launch(personaplex::cuda::weight_only_gemv(x2.data_ptr(), w.weight.data_ptr(), scale_data, y.data_ptr(),
                                                     rows, n, k, weights, floats, stream));
  }
  return y.view(sizes_with_last(x, n));
}

#if PERSONAPLEX_INT_MM && PERSONAPLEX_ROWWISE_FP8_MM
// The fewest rows the GPU library's 8-bit matmuls take (_int_mm: more than 16).
constexpr int64_t kActivationQuantizedMinRows = 17;

// The 8-bit type x's rows take on the activations' path against w (rows
// of bf16 x, k = w's inputs): where takes_activations_path says so and the
// matmul takes the sizes.
std::optional<at::ScalarType> activations_path_type(const LinearWeight &w, int64_t rows, at::ScalarType x_type) {
  if (!cuda_kernels_enabled() || !w.quantized() || x_type != at::kBFloat16 || !w.weight.is_cuda()) return std::nullopt;
  const bool int8 = w.weight.scalar_type() == at::kChar;
  if (!int8 && w.weight.scalar_type() != at::kFloat8_e4m3fn) return std::nullopt;
  const int64_t n = w.weight.size(0), k = w.weight.size(1);
  // takes_activations_path also checks the sizes the matmul takes.
  if (k == 0 || !w.weight.is_contiguous() || rows < kActivationQuantizedMinRows ||
      !takes_activations_path(int8, rows, n, k))
    return std::nullopt;
  return w.weight.scalar_type();
}

// Whether `given` holds rows x2 [rows, k] rounded to `type` (the launch
// before wrote them).
bool rows_given(const QuantizedRows &given, const at::Tensor &x2, at::ScalarType type) {
  return given.q.defined() && given.scale.defined() && given.q.scalar_type() == type &&
         given.q.sizes() == x2.sizes() && given.q.is_contiguous() && given.scale.scalar_type() == at::kFloat &&
         given.scale.numel() == x2.size(0) && given.q.device() == x2.device();
}

// The most parts an 8-bit matmul's k is split into by default (1: measured
// as noise in the batch-64 step, docs/performance.md), and the fewest of
// k's values a part takes.
constexpr int64_t kMaxSplitParts = 1;
constexpr int64_t kMinSplitK = 1024;
// The output tile the library's 8-bit matmuls take at up to 128 rows.
constexpr int64_t kMatmulTile = 128;

// The parts over k that rows x [n, k] of an 8-bit matmul run in, side by
// side: a product with fewer output tiles than a quarter of the GPU's SMs
// leaves most of them idle (n = 4096 at 64 rows: 32 tiles on 132 SMs), and
// slices of k on parallel streams fill them. 1 where the tiles fill the
// GPU, k is short, or PERSONAPLEX_8BIT_SPLIT_K (the most parts; 1: no
// split) says so.
int64_t split_parts(int64_t rows, int64_t n, int64_t k, const at::Device &device) {
  const std::optional<double> chosen = env_number("PERSONAPLEX_8BIT_SPLIT_K");
  int64_t parts = chosen ? std::max<int64_t>(1, static_cast<int64_t>(*chosen)) : kMaxSplitParts;
  const int64_t tiles = ((rows + kMatmulTile - 1) / kMatmulTile) * ((n + kMatmulTile - 1) / kMatmulTile);
  const int64_t sms = at::cuda::getDeviceProperties(device.index())->multiProcessorCount;
  parts = std::min({parts, sms / tiles, k / kMinSplitK});
  while (parts > 1 && k % (16 * parts) != 0) --parts;  // the matmuls take slices of multiples of 16
  return std::max<int64_t>(parts, 1);
}

// The 8-bit matmul xq [rows, k] . w^T as `parts` products over slices of
// k, [parts, rows, n], run side by side (on_thread_branches): int8's in
// int32 (exact), fp8's in fp32 through the tensor-wise scaled matmul (the
// row-wise one takes no strided slices), which takes one scale an operand:
// row 0's and column 0's, which product_sum divides out again.
at::Tensor product_parts_over_k(const at::Tensor &xq, const at::Tensor &x_scale, const at::Tensor &w,
                                const at::Tensor &w_scale, int64_t parts) {
  const bool int8 = xq.scalar_type() == at::kChar;
  const int64_t rows = xq.size(0), n = w.size(0), slice = xq.size(1) / parts;
  at::Tensor product = at::empty({parts, rows, n}, xq.options().dtype(int8 ? at::kInt : at::kFloat));
  const at::Tensor first_row_scale = x_scale.view({-1}).narrow(0, 0, 1);
  const at::Tensor first_column_scale = w_scale.view({-1}).narrow(0, 0, 1);
  on_thread_branches(xq.device(), parts, [&](int64_t p) {
    at::Tensor part = product[p];
    const at::Tensor a = xq.narrow(1, p * slice, slice), b = w.narrow(1, p * slice, slice).t();
    if (int8) at::_int_mm_out(part, a, b);
    else at::_scaled_mm_out(part, a, b, first_row_scale, first_column_scale, {}, {}, at::kFloat, false);
  });
  return product;
}

// The product's parts summed and scaled back to bf16 y [rows, n] (one launch).
void sum_parts(const at::Tensor &product, const at::Tensor &x_scale, const at::Tensor &w_scale, at::Tensor &y,
               cudaStream_t stream) {
  namespace cu = personaplex::cuda;
  const bool int8 = product.scalar_type() == at::kInt;
  const int64_t parts = product.dim() == 3 ? product.size(0) : 1;
  check_launch(cu::product_sum({product.data_ptr(), int8 ? cu::ProductParts::kInt32 : cu::ProductParts::kFloat32,
                                parts, x_scale.data_ptr<float>(), w_scale.data_ptr<float>(),
                                int8 ? nullptr : x_scale.data_ptr<float>(), int8 ? nullptr : w_scale.data_ptr<float>(),
                                y.data_ptr(), y.size(0), y.size(1)},
                               stream));
}

// 17 or more rows of bf16 x against 8-bit weights where
// takes_activations_path says so: x quantized per row to the weights'
// format by one kernel (unless `given` holds them: the launch that wrote x
// rounded them too), then the 8-bit tensor-core matmul (cuBLASLt) reading
// each weight byte once: whole, int8's int32 product scaled back by one more
// kernel and fp8's by the matmul itself; in parts over k where its tiles
// would leave the GPU idle, summed and scaled by one more kernel. Nothing
// when the tensors do not fit it.
std::optional<at::Tensor> activation_quantized_linear(const at::Tensor &x, const LinearWeight &w,
                                                      const QuantizedRows &given) {
  if (x.dim() == 0 || x.size(-1) != w.weight.size(-1) || x.device() != w.weight.device()) return std::nullopt;
  const int64_t k = x.size(-1), n = w.weight.size(0);
  const int64_t rows = k == 0 ? 0 : x.numel() / k;
  const std::optional<at::ScalarType> type = activations_path_type(w, rows, x.scalar_type());
  if (!type) return std::nullopt;
  const bool int8 = *type == at::kChar;
  namespace cu = personaplex::cuda;
  const at::Tensor x2 = x.reshape({rows, k}).contiguous();
  const cudaStream_t stream = stream_of(x);
  at::Tensor xq, x_scale;
  if (rows_given(given, x2, *type)) {
    xq = given.q;
    x_scale = given.scale.view({rows, 1});
  } else {
    xq = at::empty({rows, k}, x.options().dtype(*type));
    x_scale = at::empty({rows, 1}, x.options().dtype(at::kFloat));
    check_launch(cu::row_quantize({x2.data_ptr(), xq.data_ptr(), x_scale.data_ptr<float>(), rows, k,
                                   int8 ? cu::RowQuantized::kInt8 : cu::RowQuantized::kFp8E4M3},
                                  stream));
  }
  const at::Tensor w_scale = kernel_scale(w);
  const int64_t parts = split_parts(rows, n, k, x.device());
  if (!int8 && parts == 1)
    return at::_scaled_mm(xq, w.weight.t(), x_scale, w_scale.view({1, -1}), /*bias=*/{}, /*scale_result=*/{},
                          x.scalar_type(), /*use_fast_accum=*/false)
        .view(sizes_with_last(x, n));
  const at::Tensor product =
      parts > 1 ? product_parts_over_k(xq, x_scale, w.weight, w_scale, parts) : at::_int_mm(xq, w.weight.t());
  at::Tensor y = at::empty({rows, n}, x.options());
  sum_parts(product, x_scale, w_scale, y, stream);
  return y.view(sizes_with_last(x, n));
}
#endif

// The gated kernel where gemv_linear would take the matrix-vector kernel.
std::optional<at::Tensor> gemv_silu_gate(const at::Tensor &x, const LinearWeight &w) {
  const std::optional<GemvCall> c = gemv_call(x, w);
  if (!c || c->rows > personaplex::cuda::kGatedGemvMaxRows || c->n % 2 != 0) return std::nullopt;
  const int64_t hidden = c->n / 2;
  const at::Tensor x2 = x.reshape({c->rows, c->k}).contiguous();
  const at::Tensor scale = kernel_scale(w);
  at::Tensor y = at::empty({c->rows, hidden}, x.options());
  if (!personaplex::cuda::weight_only_gemv_fits(c->rows, c->n, c->k, x2.data_ptr(), w.weight.data_ptr(),
                                                y.data_ptr()))
    return std::nullopt;
  const cudaError_t e = personaplex::cuda::weight_only_gemv_silu_gate(
      x2.data_ptr(), w.weight.data_ptr(), scale.defined() ? scale.data_ptr<float>() : nullptr, y.data_ptr(),
      c->rows, hidden, c->k, c->weights, c->floats, stream_of(x));
  if (e == cudaErrorNotSupported) return std::nullopt;
  check_launch(e);
  return y.view(sizes_with_last(x, hidden));
}
#endif

}  // namespace

WeightFormat parse_weight_format(const std::string &name) {
  if (name == "bf16" || name == "auto" || name == "none") return WeightFormat::kAsLoaded;
  if (name == "int8") return WeightFormat::kInt8;
  if (name == "fp8") return WeightFormat::kFp8;
  throw Error("unknown weight format '" + name + "' (expected bf16, int8 or fp8; auto and none mean bf16)");
}

std::string weight_format_name(WeightFormat format) {
  switch (format) {
    case WeightFormat::kInt8: return "int8";
    case WeightFormat::kFp8: return "fp8";
    case WeightFormat::kAsLoaded: break;
  }
  return "bf16";
}

bool float8_available() { return PERSONAPLEX_FLOAT8; }

int64_t product_parts(const LinearWeight &w, int64_t rows, at::ScalarType x_type) {
#if defined(PERSONAPLEX_HAVE_CUDA_KERNELS) && PERSONAPLEX_INT_MM && PERSONAPLEX_ROWWISE_FP8_MM
  const std::optional<at::ScalarType> type = activations_path_type(w, rows, x_type);
  if (type) return split_parts(rows, w.weight.size(0), w.weight.size(1), w.weight.device());
#else
  (void)w, (void)rows, (void)x_type;
#endif
  return 1;
}

void check_weight_format(WeightFormat format, const at::Device &device, at::ScalarType dtype) {
  if (format != WeightFormat::kFp8) return;
  if (!float8_available())
    throw Error("fp8 weights need a libtorch with float8 types (2.1 or newer), this one is " TORCH_VERSION
                "; int8 works with any");
  if (!device.is_cuda()) return;
#if PERSONAPLEX_ROWWISE_FP8_MM
  try {
    auto options = at::TensorOptions().dtype(dtype).device(device);
    linear(at::ones({1, 16}, options), quantize(at::ones({16, 16}, options), WeightFormat::kFp8));
  } catch (const std::exception &e) {
    throw Error("fp8 weights are not supported on " + device.str() + " for a " +
                std::string(c10::toString(dtype)) +
                " model (row-wise fp8 matmul needs compute capability 8.9 or newer; int8 works on any GPU): " +
                first_line(e));
  }
#else
  (void)dtype;
  throw Error("fp8 weights on CUDA need libtorch 2.5 or newer (row-wise scaled fp8 matmul), this one is "
              TORCH_VERSION "; int8 works with any");
#endif
}

int64_t LinearWeight::nbytes() const {
  return (weight.defined() ? int64_t(weight.nbytes()) : 0) + (scale.defined() ? int64_t(scale.nbytes()) : 0);
}

LinearWeight quantize(const at::Tensor &w, WeightFormat format, const std::string &name) {
  if (format == WeightFormat::kAsLoaded) return LinearWeight(w);
  if (w.dim() != 2) throw Error("cannot quantize " + (name.empty() ? std::string("a tensor") : "'" + name + "'") +
                                " of shape " + shape_string(w.sizes()) + ": a linear weight is [out, in]");
  if (format == WeightFormat::kFp8) {
#if PERSONAPLEX_FLOAT8
    return quantize_fp8(w, name);
#else
    check_weight_format(format, w.device(), w.scalar_type());  // throws
#endif
  }
  // Rounding to the nearest step keeps every value within scale / 2. Only
  // one fp32 temporary of w's size (w / scale), rounded in place.
  LinearWeight q;
  at::Tensor scale = row_amax(w).div_(kInt8Max);
  q.weight = (w / scale).round_().clamp_(-kInt8Max, kInt8Max).to(at::kChar);
  q.scale = scale.view({-1});
  return q;
}

at::Tensor dequantize(const LinearWeight &w, at::ScalarType dtype) {
  if (!w.quantized()) return w.weight.to(dtype);
  return (w.weight.to(at::kFloat) * w.scale.unsqueeze(1)).to(dtype);
}

std::optional<at::Tensor> linear_silu_gate(const at::Tensor &x, const LinearWeight &w) {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  if (x.is_cuda() && !env_choice_is("PERSONAPLEX_SILU_GATE", "separate")) return gemv_silu_gate(x, w);
#endif
  (void)x;
  (void)w;
  return std::nullopt;
}

std::optional<at::ScalarType> quantized_rows_type(const LinearWeight &w, int64_t rows, at::ScalarType x_type) {
#if defined(PERSONAPLEX_HAVE_CUDA_KERNELS) && PERSONAPLEX_INT_MM && PERSONAPLEX_ROWWISE_FP8_MM
  // PERSONAPLEX_ROW_QUANTIZE=separate: the product rounds them in its own launch (to measure).
  if (env_choice_is("PERSONAPLEX_ROW_QUANTIZE", "separate")) return std::nullopt;
  return activations_path_type(w, rows, x_type);
#else
  (void)w;
  (void)rows;
  (void)x_type;
  return std::nullopt;
#endif
}

at::Tensor linear(const at::Tensor &x, const LinearWeight &w) { return linear(x, w, QuantizedRows{}); }

at::Tensor linear(const at::Tensor &x, const LinearWeight &w, const QuantizedRows &rows) {
#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
  if (x.is_cuda()) {
#if PERSONAPLEX_INT_MM && PERSONAPLEX_ROWWISE_FP8_MM
    if (std::optional<at::Tensor> y = activation_quantized_linear(x, w, rows)) return *y;
#endif
    if (std::optional<at::Tensor> y = gemv_linear(x, w)) return *y;
  }
#endif
  (void)rows;
  if (!w.quantized()) return at::linear(x, w.weight);
#if PERSONAPLEX_ROWWISE_FP8_MM
  if (x.is_cuda() && w.weight.scalar_type() == at::kFloat8_e4m3fn) return fp8_linear(x, w);
#endif
  // Scaling the output row by row is scaling the weight's rows; in place,
  // computed in fp32 and stored in x's dtype.
  return at::linear(x, w.weight.to(x.scalar_type())).mul_(w.scale);
}

}  // namespace personaplex::nn
