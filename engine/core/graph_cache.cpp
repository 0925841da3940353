#include "core/graph_cache.h"

#include <torch/version.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>

#if defined(PERSONAPLEX_HAVE_CUDA_GRAPHS) && TORCH_VERSION_MAJOR >= 2
#define PERSONAPLEX_GRAPHS 1
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <mutex>
#else
#define PERSONAPLEX_GRAPHS 0
#endif

namespace personaplex {

bool GraphCache::available(const at::Device &device) {
#if PERSONAPLEX_GRAPHS
  const char *env = std::getenv("PERSONAPLEX_CUDA_GRAPHS");
  return device.is_cuda() && !(env && std::strcmp(env, "0") == 0);
#else
  (void)device;
  return false;
#endif
}

#if PERSONAPLEX_GRAPHS
namespace {

// One capture at a time per process: captures are thread-local, but the
// allocator's capture bookkeeping is shared. Each key captures once, so
// this costs nothing at steady state.
std::mutex &capture_lock() {
  static std::mutex lock;
  return lock;
}

// The calling thread's own stream on a device, created non-blocking. No
// other thread ever launches onto it, so a capture on it cannot pull in
// another thread's work, and the legacy stream never waits on it. Released
// with the thread.
class ThreadStreams {
 public:
  ~ThreadStreams() {
    for (auto &s : streams_) cudaStreamDestroy(s.second);
  }
  c10::cuda::CUDAStream get(c10::DeviceIndex device) {
    auto it = streams_.find(device);
    if (it == streams_.end()) {
      c10::cuda::CUDAGuard guard(device);
      cudaStream_t s = nullptr;
      C10_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      it = streams_.emplace(device, s).first;
    }
    return c10::cuda::getStreamFromExternal(it->second, device);
  }

 private:
  std::map<c10::DeviceIndex, cudaStream_t> streams_;
};

c10::cuda::CUDAStream thread_stream(c10::DeviceIndex device) {
  thread_local ThreadStreams streams;
  return streams.get(device);
}

// Runs fn on the thread's own stream, after the caller's stream's work so
// far and before its later work.
template <typename Fn>
void on_thread_stream(const at::Device &device, Fn fn) {
  c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
  c10::cuda::CUDAStream own = thread_stream(device.index());
  c10::Event ready(c10::DeviceType::CUDA);
  ready.record(caller);
  ready.block(own);
  {
    c10::cuda::CUDAStreamGuard guard(own);
    fn();
  }
  c10::Event done(c10::DeviceType::CUDA);
  done.record(own);
  done.block(caller);
}

}  // namespace

struct GraphCache::Impl {
  Impl(const at::Device &d, bool on, GraphCacheOptions o) : device(d), enabled(on), options(o) {
    options.max_graphs = std::max<size_t>(1, options.max_graphs);
  }
  at::Device device;
  bool enabled;
  GraphCacheOptions options;
  struct Entry {
    int64_t calls = 0;       // eager calls so far
    int64_t failures = 0;    // failed captures
    int64_t next_try = 0;    // the call count of the next capture attempt
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    std::list<std::vector<int64_t>>::iterator used;  // in lru, when captured
  };
  std::map<std::vector<int64_t>, Entry> entries;
  std::list<std::vector<int64_t>> lru;  // captured keys, most recent first
  at::cuda::MempoolId_t pool{0, 0};     // shared by all graphs once the first exists
  int64_t failed = 0;

  // Captures step (nothing runs); throws when the step cannot be captured.
  std::unique_ptr<at::cuda::CUDAGraph> capture(const std::function<void()> &step) {
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    std::lock_guard<std::mutex> capturing(capture_lock());
    on_thread_stream(device, [&] {
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
    while (lru.size() > options.max_graphs) {
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
    const bool may_capture = e.calls >= options.warmup && e.calls >= e.next_try &&
                             e.failures < options.max_failures;
    if (!may_capture) {
      ++e.calls;
      on_thread_stream(device, step);
      return false;
    }
    try {
      e.graph = capture(step);
    } catch (const std::exception &) {
      // Not sticky: clear it so that no later launch check reports it, run
      // this call eagerly, try again later.
      (void)cudaGetLastError();
      ++failed;
      ++e.failures;
      ++e.calls;
      e.next_try = e.calls + options.retry_after;
      on_thread_stream(device, step);
      return false;
    }
    lru.push_front(key);
    e.used = lru.begin();
    evict();
    e.graph->replay();
    return true;
  }
};

GraphCache::GraphCache(const at::Device &device, bool use_graphs, GraphCacheOptions options)
    : impl_(std::make_unique<Impl>(device, use_graphs && available(device), options)) {}

bool GraphCache::run(const std::vector<int64_t> &key, const std::function<void()> &step) {
  if (impl_->enabled) return impl_->run(key, step);
  step();
  return false;
}

int64_t GraphCache::graphs() const { return int64_t(impl_->lru.size()); }
int64_t GraphCache::failed_captures() const { return impl_->failed; }
void GraphCache::clear() { impl_->drop_all(); }

#else

struct GraphCache::Impl {
  bool enabled = false;
};

GraphCache::GraphCache(const at::Device &, bool, GraphCacheOptions) : impl_(std::make_unique<Impl>()) {}

bool GraphCache::run(const std::vector<int64_t> &, const std::function<void()> &step) {
  step();
  return false;
}

int64_t GraphCache::graphs() const { return 0; }
int64_t GraphCache::failed_captures() const { return 0; }
void GraphCache::clear() {}

#endif

GraphCache::~GraphCache() = default;
GraphCache::GraphCache(GraphCache &&) noexcept = default;
GraphCache &GraphCache::operator=(GraphCache &&) noexcept = default;
bool GraphCache::enabled() const { return impl_->enabled; }

}  // namespace personaplex
