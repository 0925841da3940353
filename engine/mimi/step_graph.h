// Replays one streaming step as a CUDA graph (core/graph_cache.h), so a
// frame's hundreds of small kernels cost one launch instead of one host round
// each. The step must update its state in place (conv buffers, KV caches and
// the position counter on the device), which the Mimi steps do once their
// first call has sized every buffer; host-side counters are not advanced by
// replays. The graph reads the input from, and writes the output to, buffers
// of its own, so callers pass and get ordinary tensors.
//
// Off CUDA, or without graph support in the build, it runs the step as is.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>

#include "core/graph_cache.h"

namespace personaplex::mimi {

class StepGraph {
 public:
  using Step = std::function<at::Tensor(const at::Tensor &)>;

  // Whether graphs can be used on `device` (see GraphCache::available).
  static bool available(const at::Device &device);

  explicit StepGraph(const at::Device &device);

  // The first call runs `step` directly; the next captures it and every
  // later call with an input of the same shape replays it.
  at::Tensor run(const at::Tensor &input, const Step &step);

 private:
  GraphCache graphs_;
  at::Tensor input_, output_;  // the graph's own buffers
};

}  // namespace personaplex::mimi
