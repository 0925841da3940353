#include "lm/graph_cache.h"

#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <optional>

#if defined(PERSONAPLEX_HAVE_CUDA_GRAPHS) && TORCH_VERSION_MAJOR >= 2
#define PERSONAPLEX_LM_GRAPH_CACHE 1
#include <ATen/cuda/CUDAGraph.h>
#include <cuda_runtime_api.h>

#include "core/graph_capture_lock.h"
#include "core/side_stream.h"
#else
#define PERSONAPLEX_LM_GRAPH_CACHE 0
#endif

namespace personaplex::lm {

bool GraphCache::available(const at::Device &device) {
#if PERSONAPLEX_LM_GRAPH_CACHE
  const char *env = std::getenv("PERSONAPLEX_CUDA_GRAPHS");
  return device.is_cuda() && !(env && std::strcmp(env, "0") == 0);
#else
  (void)device;
  return false;
#endif
}

#if PERSONAPLEX_LM_GRAPH_CACHE

struct GraphCache::Impl {
  Impl(const at::Device &d, bool on, size_t max, int64_t calls)
      : device(d), enabled(on), max_graphs(std::max<size_t>(1, max)), warmup(calls) {}
  at::Device device;
  bool enabled;
  size_t max_graphs;
  int64_t warmup;
  struct Entry {
    int64_t calls = 0;
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    std::list<std::vector<int64_t>>::iterator used;  // in lru, when captured
  };
  std::map<std::vector<int64_t>, Entry> entries;
  std::list<std::vector<int64_t>> lru;  // captured keys, most recent first
  at::cuda::MempoolId_t pool{0, 0};     // shared by all graphs once the first exists
  SideStream side;

  // Captures step (nothing runs); throws when the step cannot be captured.
  std::unique_ptr<at::cuda::CUDAGraph> capture(const std::function<void()> &step) {
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    std::lock_guard<std::mutex> capturing(graph_capture_lock());
    side.run(device, [&] {
      // Thread-local: other threads (Mimi, other servers) keep using CUDA.
      graph->capture_begin(pool, cudaStreamCaptureModeThreadLocal);
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
    });
    if (pool.first == 0 && pool.second == 0) pool = graph->pool();
    return graph;
  }

  void evict() {
    while (lru.size() > max_graphs) {
      entries.erase(lru.back());
      lru.pop_back();
    }
  }

  void drop_all() {
    entries.clear();
    lru.clear();
    pool = {0, 0};  // its last user is gone: the next capture starts a fresh one
  }

  bool run(const std::vector<int64_t> &key, const std::function<void()> &step) {
    Entry &e = entries[key];
    if (e.graph) {
      lru.splice(lru.begin(), lru, e.used);
      e.graph->replay();
      return true;
    }
    if (e.calls++ < warmup) {
      side.run(device, step);
      return false;
    }
    try {
      e.graph = capture(step);
    } catch (const std::exception &) {
      // Some kernel refused capture: eager from now on. The capture's error
      // is not sticky; clear it so that no later launch check reports it.
      (void)cudaGetLastError();
      enabled = false;
      drop_all();
      step();
      return false;
    }
    lru.push_front(key);
    e.used = lru.begin();
    evict();
    e.graph->replay();
    return true;
  }
};

GraphCache::GraphCache(const at::Device &device, bool use_graphs, size_t max_graphs, int64_t warmup)
    : impl_(std::make_unique<Impl>(device, use_graphs && available(device), max_graphs, warmup)) {}

bool GraphCache::run(const std::vector<int64_t> &key, const std::function<void()> &step) {
  if (impl_->enabled) return impl_->run(key, step);
  step();
  return false;
}

int64_t GraphCache::graphs() const { return int64_t(impl_->lru.size()); }
void GraphCache::clear() { impl_->drop_all(); }

#else

struct GraphCache::Impl {
  bool enabled = false;
};

GraphCache::GraphCache(const at::Device &, bool, size_t, int64_t) : impl_(std::make_unique<Impl>()) {}

bool GraphCache::run(const std::vector<int64_t> &, const std::function<void()> &step) {
  step();
  return false;
}

int64_t GraphCache::graphs() const { return 0; }
void GraphCache::clear() {}

#endif

GraphCache::~GraphCache() = default;
GraphCache::GraphCache(GraphCache &&) noexcept = default;
GraphCache &GraphCache::operator=(GraphCache &&) noexcept = default;
bool GraphCache::enabled() const { return impl_->enabled; }

}  // namespace personaplex::lm
