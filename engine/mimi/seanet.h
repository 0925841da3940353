// The SEANet convolutional encoder (PCM -> latent at hop_length samples per
// step) and decoder (latent -> PCM): causal convs, ELU, residual blocks with a
// skip connection, strided (transposed) convs by the configured ratios.
// Tensor names follow the reference's nn.Sequential indices ("encoder.model.N").
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "mimi/config.h"
#include "mimi/conv.h"

namespace personaplex::mimi {

// Per-stream state of one SEANet: every conv's left context and every
// transposed conv's overlap.
struct SeanetState {
  std::vector<ConvState> convs;
  std::vector<ConvTrState> convtrs;
  void reset();
};

class Seanet {
 public:
  enum class Role { Encoder, Decoder };

  Seanet() = default;
  static Seanet load(const SafeTensors &file, const SeanetConfig &config, Role role,
                     at::ScalarType dtype, const at::Device &device);
  // Every tensor the layout holds (names and shapes), for writers.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(
      const SeanetConfig &config, Role role);

  SeanetState new_state() const;
  // Rows mode (see ConvState): `batch` streams, stepped where `active` is set.
  SeanetState new_state(int64_t batch, const at::Tensor &active, const at::TensorOptions &options) const;
  void reset_rows(SeanetState &state, const at::Tensor &mask) const;
  at::Tensor forward(const at::Tensor &x) const;                   // whole signal
  at::Tensor step(const at::Tensor &x, SeanetState &state) const;  // one chunk of a stream

  // One layer of the reference's sequence; `index` points into convs/convtrs.
  struct Layer {
    enum class Kind { Elu, Conv, ConvTr, Residual } kind;
    int64_t index = 0;     // Conv/ConvTr: the conv; Residual: its first conv
    int64_t length = 0;    // Residual: convs in its branch
    int64_t shortcut = -1; // Residual: the shortcut conv, -1 for identity
  };
  struct Plan {
    std::vector<Layer> layers;
    std::vector<ConvSpec> convs, convtrs;
  };
  static Plan plan(const SeanetConfig &config, Role role);

 private:
  template <typename ConvFn, typename ConvTrFn>
  at::Tensor run(const at::Tensor &x, ConvFn conv, ConvTrFn convtr) const;
  ConvEpilogue epilogue_for(size_t layer) const;

  Plan plan_;
  double alpha_ = 1.0;
  std::vector<Conv1d> convs_;
  std::vector<ConvTranspose1d> convtrs_;
};

}  // namespace personaplex::mimi
