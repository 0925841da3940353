// The streaming transformer shared by Mimi (LayerNorm, GELU MLP, layer scale)
// and the LM's temporal transformer (RMSNorm in fp32, SiLU-gated MLP): causal
// self-attention with interleaved RoPE over a ring KV cache of `context` steps.
//
// Weights (TransformerWeights) are immutable after loading and shared by any
// number of streams; each stream owns a TransformerState.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "nn/kv_cache.h"
#include "nn/quantized_linear.h"

namespace personaplex {
class SafeTensors;
}

namespace personaplex::nn {

enum class Norm { LayerNorm, RmsNorm, RmsNormF32 };
enum class Mlp { Gelu, SiluGated };

struct TransformerConfig {
  int64_t d_model = 512;
  int64_t num_heads = 8;
  int64_t num_layers = 8;
  int64_t dim_feedforward = 2048;
  int64_t context = 250;  // KV window in steps
  double max_period = 10000;
  bool rope = true;
  Norm norm = Norm::LayerNorm;
  Mlp mlp = Mlp::Gelu;
  bool layer_scale = false;

  // The reference's names: "layer_norm", "rms_norm", "rms_norm_f32"; gating
  // "none" or "silu".
  static Norm parse_norm(const std::string &name);
  static Mlp parse_gating(const std::string &name);
  // Hidden width of the gated MLP, as the reference derives it.
  int64_t gated_hidden() const;
};

struct LayerWeights {
  at::Tensor norm1_w, norm1_b, norm2_w, norm2_b;  // b undefined for RMSNorm
  LinearWeight in_proj, out_proj;                  // [3D, D], [D, D]
  LinearWeight mlp_in, mlp_out;                    // linear1/linear2 or gating in/out
  at::Tensor scale1, scale2;                       // layer scale, undefined when off
  // The four linear weights are kept in host memory and uploaded when the
  // layer runs (nn::LayerFeed).
  bool host = false;
};

struct TransformerWeights {
  TransformerConfig config;
  std::vector<LayerWeights> layers;

  // Loads `PREFIX.layers.N.*` with the reference's tensor names, checking
  // every shape against the config. The linear weights are stored in
  // `format`, each quantized as soon as it is loaded; those of the last
  // `host_layers` layers are then moved to host memory (to_host_for), so the
  // device holds one of them at a time while loading.
  static TransformerWeights load(const SafeTensors &file, const std::string &prefix,
                                 const TransformerConfig &config, at::ScalarType dtype,
                                 const at::Device &device, WeightFormat format = WeightFormat::kAsLoaded,
                                 int64_t host_layers = 0);
  // Names, dtypes and shapes of every tensor load() reads (for writers).
  static std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(
      const std::string &prefix, const TransformerConfig &config);
};

struct TransformerState {
  std::vector<RingKVCache> caches;  // one per layer
  int64_t offset = 0;               // steps seen so far (RoPE position of the next one)
  // `offset` on the device ([1] int64): positions are derived from it there,
  // so a captured CUDA graph of forward() stays right when replayed.
  at::Tensor step;
  // Rows mode (see new_state): every batch row is a stream of its own, with
  // its own position (`step` is [B]); only the rows whose `active` (bool [B],
  // on the device) is set advance. An inactive row's key and value go to the
  // slot its next step writes first, which it never attends to, so the row
  // is left as it was.
  at::Tensor active;
  void reset();
  // Rows mode: the rows of `mask` (bool [B]) start afresh.
  void reset_rows(const at::Tensor &mask);
};

class Transformer {
 public:
  explicit Transformer(TransformerWeights weights);

  const TransformerConfig &config() const { return w_.config; }
  // `active`: rows mode with this mask (shared with the caller, who sets it).
  TransformerState new_state(int64_t batch, const at::TensorOptions &options,
                             const at::Tensor &active = {}) const;

  // x: [B, T, d_model] -> [B, T, d_model]; advances state by T steps.
  at::Tensor forward(const at::Tensor &x, TransformerState &state) const;
  // Non-streaming: the whole sequence at once, positions from 0, every key
  // kept (no ring), the same causal `context` window.
  at::Tensor forward(const at::Tensor &x) const;

 private:
  at::Tensor norm(const at::Tensor &x, const at::Tensor &w, const at::Tensor &b) const;
  // x + scale * update (scale may be undefined) and its norm: one launch
  // where a kernel takes it.
  std::pair<at::Tensor, at::Tensor> add_then_norm(const at::Tensor &x, const at::Tensor &update,
                                                  const at::Tensor &scale, const at::Tensor &w,
                                                  const at::Tensor &b) const;
  at::Tensor mlp(const LayerWeights &l, const at::Tensor &x) const;
  // What every layer of one call shares: RoPE angles, the attention mask
  // and, when streaming, the ring slots the new steps go to.
  struct StepContext;
  // state == nullptr: attend over this call's keys only.
  at::Tensor self_attention(const LayerWeights &l, const at::Tensor &x, const StepContext &ctx,
                            RingKVCache *cache) const;
  at::Tensor run_layers(const at::Tensor &x, TransformerState *state, const StepContext &ctx) const;
  at::Tensor forward_rows(const at::Tensor &x, TransformerState &state) const;
  // The context of a streaming step from `steps` (each stream's first
  // position, [1] or [B, 1]); with a ring attention kernel only the steps.
  StepContext streaming_context(const at::Tensor &input, const TransformerState &state,
                                const at::Tensor &steps) const;

  TransformerWeights w_;
  at::Tensor frequencies_;  // RoPE, on the weights' device
  at::Tensor slot_ids_;     // arange(context), on the weights' device
};

}  // namespace personaplex::nn
