#include "mimi/step_graph.h"

namespace personaplex::mimi {

bool StepGraph::available(const at::Device &device) { return GraphCache::available(device); }

StepGraph::StepGraph(const at::Device &device) : graphs_(device, true, GraphCacheOptions{1, 1}) {}

at::Tensor StepGraph::run(const at::Tensor &x, const Step &step) {
  if (!graphs_.enabled() || (input_.defined() && x.sizes() != input_.sizes())) return step(x);
  if (!input_.defined()) {
    input_ = x.clone();
  } else {
    input_.copy_(x);
  }
  if (!graphs_.run({1}, [&] { output_ = step(input_); })) {
    // An eager call (warm-up, or a capture that did not take): its output
    // is this call's own.
    return output_;
  }
  // The graph's output buffer is overwritten by the next replay.
  return output_.clone();
}

}  // namespace personaplex::mimi
