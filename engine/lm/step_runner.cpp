#include "lm/step_runner.h"

#include <torch/version.h>

#include "lm/cuda_config.h"

#if PERSONAPLEX_LM_CUDA && TORCH_VERSION_MAJOR >= 2
#define PERSONAPLEX_LM_CUDA_GRAPHS 1
#else
#define PERSONAPLEX_LM_CUDA_GRAPHS 0
#endif

#if PERSONAPLEX_LM_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>

#include "core/graph_capture_lock.h"
#include <c10/cuda/CUDAStream.h>
#endif

namespace personaplex::lm {

struct StepRunner::Impl {
  at::Device device;
  bool use_graphs;
#if PERSONAPLEX_LM_CUDA_GRAPHS
  struct Entry {
    int64_t calls = 0;
    std::unique_ptr<at::cuda::CUDAGraph> graph;
  };
  std::map<int64_t, Entry> entries;

  void capture(Entry &e, const std::function<void()> &step) {
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    const auto current = c10::cuda::getCurrentCUDAStream(device.index());
    auto side = c10::cuda::getStreamFromPool(false, device.index());
    side.synchronize();
    current.synchronize();
    {
      std::lock_guard<std::mutex> capturing(graph_capture_lock());
      c10::cuda::CUDAStreamGuard guard(side);
      // Thread-local capture: other threads (a codec, other conversations)
      // may keep calling CUDA meanwhile.
      graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      try {
        step();
      } catch (...) {
        try {
          graph->capture_end();
        } catch (...) {
        }
        throw;
      }
      graph->capture_end();
    }
    e.graph = std::move(graph);
  }
#endif
};

StepRunner::StepRunner(const at::Device &device, bool use_graphs)
    : impl_(std::make_unique<Impl>(Impl{device, use_graphs && device.is_cuda() && PERSONAPLEX_LM_CUDA_GRAPHS})) {}
StepRunner::~StepRunner() = default;
StepRunner::StepRunner(StepRunner &&) noexcept = default;
StepRunner &StepRunner::operator=(StepRunner &&) noexcept = default;

bool StepRunner::graphs() const { return impl_->use_graphs; }

void StepRunner::clear() {
#if PERSONAPLEX_LM_CUDA_GRAPHS
  impl_->entries.clear();
#endif
}

void StepRunner::run(int64_t variant, const std::function<void()> &step) {
#if PERSONAPLEX_LM_CUDA_GRAPHS
  if (impl_->use_graphs) {
    auto &e = impl_->entries[variant];
    if (e.graph) {
      e.graph->replay();
      return;
    }
    if (e.calls++ > 0) {
      try {
        impl_->capture(e, step);
        e.graph->replay();
        return;
      } catch (const std::exception &) {
        // Some kernel refused capture: stay eager from now on.
        impl_->use_graphs = false;
        impl_->entries.clear();
      }
    }
  }
#else
  (void)variant;
#endif
  step();
}

}  // namespace personaplex::lm
