// Causal 1-d convolutions that stream: a Conv1d pads its left side once (zeros
// or a copy of the first sample) and afterwards keeps exactly the input it
// still needs; a ConvTranspose1d keeps the last K-S samples of its output,
// which the next input still adds to. Fed any chunking of a signal, they give
// the samples a single call on the whole signal gives.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include <string>
#include <utility>
#include <vector>

#include "mimi/config.h"

namespace personaplex {
class SafeTensors;
}

namespace personaplex::mimi {

struct ConvSpec {
  std::string name;  // tensor name prefix: NAME.weight, NAME.bias
  int64_t in_channels = 0, out_channels = 0, kernel_size = 1;
  int64_t stride = 1, dilation = 1, groups = 1;
  bool bias = true;
  PadMode pad_mode = PadMode::Constant;

  // The stored tensors' names and shapes (transposed: weight [in, out/groups, K]).
  std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(bool transposed) const;
};

// Rows mode (prime_rows): each batch row is a stream of its own; a step
// keeps the new context only of the rows whose `active` (bool [B], on the
// device, shared by all of a stream's convs) is set, and a row restarted by
// reset_rows() starts as a fresh stream does.
struct ConvState {
  at::Tensor previous;  // input not yet consumed by a full window
  bool started = false;  // the left padding was added
  at::Tensor active;     // rows mode
  at::Tensor fresh;      // rows mode, replicate padding: rows whose first input is still to come
  void reset() {
    previous = at::Tensor();
    started = false;
  }
};

struct ConvTrState {
  at::Tensor partial;  // [B, C, K-S] output still receiving contributions, bias excluded
  at::Tensor active;   // rows mode
  void reset() { partial = at::Tensor(); }
};

// What a conv step adds to its result and gives out: a skip connection
// (added after the bias) and the result as it is, its ELU, or both, as the
// layers after it read them (SEANet: an ELU follows most convs).
struct ConvEpilogue {
  at::Tensor skip;  // [B, out_channels, T_out], or undefined
  bool raw = true, elu = false;
  double alpha = 1.0;
};
struct ConvOutput {
  at::Tensor raw, elu;  // each defined where asked
};

class Conv1d {
 public:
  Conv1d() = default;
  Conv1d(const ConvSpec &spec, const SafeTensors &file, at::ScalarType dtype, const at::Device &device);
  Conv1d(const ConvSpec &spec, at::Tensor weight, at::Tensor bias);

  // Whole signal: left padding K_eff-S plus right padding up to a full last window.
  at::Tensor forward(const at::Tensor &x) const;
  // One chunk of a stream [B, C, T]; returns every output whose window is complete.
  at::Tensor step(const at::Tensor &x, ConvState &state) const;
  // The same with an epilogue: on CUDA at small batch one launch
  // (cuda/conv1d_step.h) reads the context and x in place and applies it.
  ConvOutput step(const at::Tensor &x, ConvState &state, const ConvEpilogue &epilogue) const;
  // Rows mode for `batch` streams whose chunks are multiples of the stride
  // (the left context then always holds K_eff - S samples): the state as a
  // fresh stream's first chunk leaves it.
  void prime_rows(ConvState &state, int64_t batch, const at::Tensor &active,
                  const at::TensorOptions &options) const;
  void reset_rows(ConvState &state, const at::Tensor &mask) const;

  int64_t effective_kernel() const { return (spec_.kernel_size - 1) * spec_.dilation + 1; }
  int64_t padding_total() const { return effective_kernel() - spec_.stride; }
  const ConvSpec &spec() const { return spec_; }

 private:
  at::Tensor conv(const at::Tensor &x) const;
  at::Tensor pad(const at::Tensor &x, int64_t left, int64_t right) const;
  // The kernel's step: nothing where it does not take these tensors.
  std::optional<ConvOutput> fused_step(const at::Tensor &x, ConvState &state, const ConvEpilogue &e) const;

  ConvSpec spec_;
  at::Tensor weight_, bias_;
  at::Tensor libtorch_weight_;  // the filter libtorch's convolution reads (mimi/conv_filters.h)
};

class ConvTranspose1d {
 public:
  ConvTranspose1d() = default;
  ConvTranspose1d(const ConvSpec &spec, const SafeTensors &file, at::ScalarType dtype,
                  const at::Device &device);
  ConvTranspose1d(const ConvSpec &spec, at::Tensor weight, at::Tensor bias);

  // Whole signal: T inputs -> S*T outputs (the K-S trailing samples trimmed).
  at::Tensor forward(const at::Tensor &x) const;
  // One chunk of a stream: T inputs -> S*T outputs, the overlap carried over.
  at::Tensor step(const at::Tensor &x, ConvTrState &state) const;
  // The same, giving its result as the layer after it reads it (skip
  // ignored: SEANet adds none to a transposed conv).
  ConvOutput step(const at::Tensor &x, ConvTrState &state, const ConvEpilogue &epilogue) const;
  // Rows mode (see Conv1d::prime_rows).
  void prime_rows(ConvTrState &state, int64_t batch, const at::Tensor &active,
                  const at::TensorOptions &options) const;
  void reset_rows(ConvTrState &state, const at::Tensor &mask) const;

  const ConvSpec &spec() const { return spec_; }

 private:
  at::Tensor convtr(const at::Tensor &x) const;
  // A step through libtorch's launches (where the kernel does not take it).
  at::Tensor libtorch_step(const at::Tensor &x, ConvTrState &state) const;

  ConvSpec spec_;
  at::Tensor weight_, bias_;
  at::Tensor libtorch_weight_;  // the filter libtorch's convolution reads (mimi/conv_filters.h)
};

}  // namespace personaplex::mimi
