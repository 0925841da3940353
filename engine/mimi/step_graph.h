// Replays one streaming step as a captured CUDA graph, so a frame's hundreds
// of small kernels cost one launch instead of one host round each. The step
// must update its state in place (conv buffers, KV caches and the position
// counter on the device), which the Mimi steps do once their first call has
// sized every buffer; host-side counters are not advanced by replays.
//
// Without CUDA graph support in the build, or off CUDA, it runs the step as is.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>

namespace personaplex::mimi {

class StepGraph {
 public:
  using Step = std::function<at::Tensor(const at::Tensor &)>;

  // Whether graphs can be used on `device` (a CUDA device, in a build with
  // graph support, unless PERSONAPLEX_CUDA_GRAPHS=0 in the environment).
  static bool available(const at::Device &device);

  explicit StepGraph(int64_t warmup_calls = 1);
  ~StepGraph();

  // The first `warmup_calls` calls run `step` directly; the next captures it
  // and every later call with an input of the same shape replays it.
  at::Tensor run(const at::Tensor &input, const Step &step);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex::mimi
