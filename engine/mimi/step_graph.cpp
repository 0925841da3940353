#include "mimi/step_graph.h"

#include <cstdlib>
#include <cstring>
#include <optional>

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>

#include "core/graph_capture_lock.h"
#include "core/side_stream.h"
#endif

namespace personaplex::mimi {

bool StepGraph::available(const at::Device &device) {
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  const char *env = std::getenv("PERSONAPLEX_CUDA_GRAPHS");
  return device.is_cuda() && !(env && std::strcmp(env, "0") == 0);
#else
  (void)device;
  return false;
#endif
}

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS

struct StepGraph::Impl {
  int64_t warmup = 1, calls = 0;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  at::Tensor input, output;  // the graph's own buffers
  // Warm-up calls run there too (see core/side_stream.h).
  SideStream side;
};

StepGraph::StepGraph(int64_t warmup_calls) : impl_(std::make_unique<Impl>()) { impl_->warmup = warmup_calls; }
StepGraph::~StepGraph() = default;

at::Tensor StepGraph::run(const at::Tensor &x, const Step &step) {
  Impl &g = *impl_;
  if (!x.is_cuda() || (g.graph && x.sizes() != g.input.sizes())) return step(x);
  if (!g.graph && g.calls < g.warmup) {
    ++g.calls;
    at::Tensor out;
    g.side.run(x.device(), [&] { out = step(x); });
    return out;
  }
  if (!g.graph) {
    g.input = x.clone();
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    std::lock_guard<std::mutex> capturing(graph_capture_lock());
    g.side.run(x.device(), [&] {
      // Thread-local capture: other threads (other streams, the LM) keep
      // using CUDA freely meanwhile.
      graph->capture_begin(at::cuda::MempoolId_t{0, 0}, cudaStreamCaptureModeThreadLocal);
      try {
        g.output = step(g.input);
      } catch (...) {
        graph->capture_end();
        throw;
      }
      graph->capture_end();
    });
    g.graph = std::move(graph);
  } else {
    g.input.copy_(x);
  }
  g.graph->replay();
  // The graph's output buffer is overwritten by the next replay.
  return g.output.clone();
}

#else

struct StepGraph::Impl {};
StepGraph::StepGraph(int64_t) {}
StepGraph::~StepGraph() = default;
at::Tensor StepGraph::run(const at::Tensor &x, const Step &step) { return step(x); }

#endif

}  // namespace personaplex::mimi
