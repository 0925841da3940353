#include "mimi/fused_quantizer.h"

#include "core/cuda_kernels.h"
#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAStream.h>

#include "cuda/residual_quantizer.h"
#endif

namespace personaplex::mimi {

#ifdef PERSONAPLEX_HAVE_CUDA_KERNELS
namespace {

namespace cu = personaplex::cuda;

cudaStream_t stream_of(const at::Tensor &x) { return c10::cuda::getCurrentCUDAStream(x.device().index()).stream(); }

void check(cudaError_t e, const char *kernel) {
  if (e != cudaSuccess) throw Error(std::string(kernel) + " kernel: " + cudaGetErrorString(e));
}

// Whether every group's tensors are fp32, contiguous, on `device`, of one
// vector width and codebook size, and the kernels take that width.
bool groups_fit(const std::vector<QuantizerGroupTensors> &groups, const at::Device &device) {
  if (groups.empty() || groups.size() > size_t(cu::kRvqMaxGroups)) return false;
  const at::Tensor &c0 = groups[0].codebooks;
  if (c0.dim() != 3 || !cu::rvq_fits(int(c0.size(2))) || c0.size(1) > (int64_t(1) << 30)) return false;
  for (const auto &g : groups) {
    for (const at::Tensor *t : {&g.codebooks, &g.norms, &g.output_proj})
      if (!t->defined() || t->scalar_type() != at::kFloat || !t->is_contiguous() || t->device() != device)
        return false;
    if (g.codebooks.dim() != 3 || g.codebooks.size(1) != c0.size(1) || g.codebooks.size(2) != c0.size(2) ||
        g.norms.sizes() != g.codebooks.sizes().slice(0, 2) || g.output_proj.dim() != 2 ||
        g.output_proj.size(1) != c0.size(2) || g.output_proj.size(0) != groups[0].output_proj.size(0))
      return false;
  }
  return true;
}

int64_t all_levels(const std::vector<QuantizerGroupTensors> &groups) {
  int64_t n = 0;
  for (const auto &g : groups) n += g.codebooks.size(0);
  return n;
}

}  // namespace

std::optional<at::Tensor> fused_quantizer_encode(const at::Tensor &latent, const at::Tensor &input_projs,
                                                 const std::vector<QuantizerGroupTensors> &groups) {
  if (!cuda_kernels_take(latent) || latent.dim() != 3 || !groups_fit(groups, latent.device())) return std::nullopt;
  const int64_t B = latent.size(0), T = latent.size(2), rows = B * T, Q = groups[0].codebooks.size(2);
  const int64_t bins = groups[0].codebooks.size(1), G = int64_t(groups.size()), levels = all_levels(groups);
  if (rows == 0 || rows > 65535 || input_projs.dim() != 2 || input_projs.size(0) != G * Q ||
      input_projs.size(1) != latent.size(1) || input_projs.scalar_type() != at::kFloat ||
      input_projs.device() != latent.device())
    return std::nullopt;
  // [B, T, G * Q]: each row's residual for every group, side by side.
  at::Tensor residual = at::matmul(latent.to(at::kFloat).transpose(1, 2), input_projs.t()).contiguous();
  at::Tensor codes = at::empty({B, levels, T}, latent.options().dtype(at::kLong));
  auto device_options = latent.options();
  at::Tensor counters = at::zeros({levels, rows}, device_options.dtype(at::kInt));
  at::Tensor workspace = at::empty({int64_t(cu::rvq_workspace_floats(int(rows), int(bins)))},
                                   device_options.dtype(at::kFloat));
  const cudaStream_t stream = stream_of(latent);
  int64_t level = 0;
  for (int64_t g = 0; g < G; ++g) {
    const QuantizerGroupTensors &group = groups[size_t(g)];
    for (int64_t k = 0; k < group.codebooks.size(0); ++k, ++level) {
      cu::RvqLevel a;
      a.residual = residual.data_ptr<float>() + g * Q;
      a.residual_stride = G * Q;
      a.codebook = group.codebooks.data_ptr<float>() + k * bins * Q;
      a.norms = group.norms.data_ptr<float>() + k * bins;
      a.codes = codes.data_ptr<int64_t>() + level * T;
      a.batch_stride = levels * T;
      a.queries = int(T);
      a.workspace = workspace.data_ptr<float>();
      a.counters = reinterpret_cast<unsigned *>(counters.data_ptr<int>() + level * rows);
      a.rows = int(rows);
      a.dim = int(Q);
      a.bins = int(bins);
      check(cu::rvq_level(a, stream), "quantizer level");
    }
  }
  return codes;
}

std::optional<at::Tensor> fused_quantizer_decode(const at::Tensor &codes,
                                                 const std::vector<QuantizerGroupTensors> &groups,
                                                 at::ScalarType dtype) {
  if (!cuda_kernels_take(codes) || codes.dim() != 3 || codes.scalar_type() != at::kLong || !codes.is_contiguous() ||
      !groups_fit(groups, codes.device()) || (dtype != at::kFloat && dtype != at::kBFloat16))
    return std::nullopt;
  const int64_t B = codes.size(0), T = codes.size(2), D = groups[0].output_proj.size(0);
  if (codes.size(1) != all_levels(groups) || B * T == 0 || B * T > 65535) return std::nullopt;
  at::Tensor out = at::empty({B, D, T}, codes.options().dtype(dtype));
  cu::RvqDecode a;
  int first = 0;
  for (const auto &g : groups) {
    cu::RvqGroup &r = a.groups[a.group_count++];
    r.codebooks = g.codebooks.data_ptr<float>();
    r.projection = g.output_proj.data_ptr<float>();
    r.first = first;
    r.levels = int(g.codebooks.size(0));
    first += r.levels;
  }
  a.codes = codes.data_ptr<int64_t>();
  a.out = out.data_ptr();
  a.batch = int(B);
  a.all_levels = int(codes.size(1));
  a.queries = int(T);
  a.bins = int(groups[0].codebooks.size(1));
  a.dim = int(groups[0].codebooks.size(2));
  a.out_dim = int(D);
  a.floats = dtype == at::kBFloat16 ? cu::Floats::kBFloat16 : cu::Floats::kFloat32;
  check(cu::rvq_decode(a, stream_of(codes)), "quantizer decode");
  return out;
}

#else

std::optional<at::Tensor> fused_quantizer_encode(const at::Tensor &, const at::Tensor &,
                                                 const std::vector<QuantizerGroupTensors> &) {
  return std::nullopt;
}
std::optional<at::Tensor> fused_quantizer_decode(const at::Tensor &, const std::vector<QuantizerGroupTensors> &,
                                                 at::ScalarType) {
  return std::nullopt;
}

#endif

}  // namespace personaplex::mimi
