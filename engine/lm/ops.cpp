#include "lm/ops.h"

#include "nn/fused_ops.h"

namespace personaplex::lm {

double norm_eps(bool f32) { return f32 ? 1e-8 : 1e-5; }

bool norm_in_fp32(const at::Tensor &x, bool f32) { return f32 || x.scalar_type() == at::kFloat; }

at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &alpha, bool f32) {
  const double eps = norm_eps(f32);
  if (norm_in_fp32(x, f32))
    if (std::optional<at::Tensor> y = nn::fused_rms_norm(x, alpha, eps)) return *y;
  at::Tensor xf = f32 ? x.to(at::kFloat) : x;
  at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true) + eps;
  return (xf * (alpha.to(var.scalar_type()) * at::rsqrt(var))).to(x.scalar_type());
}

at::Tensor gated_silu(const at::Tensor &x, const nn::LinearWeight &w_in, const nn::LinearWeight &w_out,
                      const nn::QuantizedRows &x_rows) {
  if (std::optional<at::Tensor> gate = nn::linear_silu_gate(x, w_in)) return nn::linear(*gate, w_out);
  at::Tensor h = nn::linear(x, w_in, x_rows);
  const int64_t rows = h.size(-1) == 0 ? 0 : h.numel() / h.size(-1);
  if (std::optional<at::ScalarType> type = nn::quantized_rows_type(w_out, rows, h.scalar_type()))
    if (std::optional<nn::Gated> g = nn::fused_silu_gate_rows(h, *type)) return nn::linear(g->out, w_out, g->rows);
  if (std::optional<at::Tensor> gate = nn::fused_silu_gate(h)) return nn::linear(*gate, w_out);
  h = h.unflatten(-1, {2, -1});
  return nn::linear(at::silu(h.select(-2, 0)) * h.select(-2, 1), w_out);
}

at::Tensor embed(const at::Tensor &table, const at::Tensor &ids) {
  at::Tensor rows = at::embedding(table, ids.clamp_min(0));
  return rows * (ids != -1).unsqueeze(-1).to(rows.scalar_type());
}

}  // namespace personaplex::lm
