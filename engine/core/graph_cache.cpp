#include "core/graph_cache.h"

#include "core/thread_stream.h"

#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#if defined(PERSONAPLEX_HAVE_CUDA_GRAPHS) && TORCH_VERSION_MAJOR >= 2
#define PERSONAPLEX_GRAPHS 1
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>

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

bool log_captures() {
  static const bool on = [] {
    const char *env = std::getenv("PERSONAPLEX_GRAPH_LOG");
    return env && std::strcmp(env, "0") != 0;
  }();
  return on;
}

// The kernels of this thread's last capture, counted for the log (what a
// step costs in launches).
thread_local size_t captured_kernels = 0;

size_t kernels_in_capture(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  cudaGraph_t graph = nullptr;
#if CUDART_VERSION >= 13000
  cudaError_t e = cudaStreamGetCaptureInfo(stream, &status, nullptr, &graph, nullptr, nullptr, nullptr);
#else
  cudaError_t e = cudaStreamGetCaptureInfo_v2(stream, &status, nullptr, &graph, nullptr, nullptr);
#endif
  size_t count = 0;
  if (e != cudaSuccess || !graph || cudaGraphGetNodes(graph, nullptr, &count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  std::vector<cudaGraphNode_t> nodes(count);
  if (count == 0 || cudaGraphGetNodes(graph, nodes.data(), &count) != cudaSuccess) return 0;
  size_t kernels = 0;
  for (cudaGraphNode_t n : nodes) {
    cudaGraphNodeType type;
    if (cudaGraphNodeGetType(n, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel) ++kernels;
  }
  return kernels;
}

void log_capture(const char *how, const std::vector<int64_t> &key, double ms, const char *error) {
  if (!log_captures()) return;
  std::string k;
  for (int64_t v : key) k += (k.empty() ? "" : ",") + std::to_string(v);
  // Ended at, on the monotonic clock (as the batch's step log).
  const double at = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (error)
    std::fprintf(stderr, "graph capture [%s] (%s) failed after %.1f ms at %.3f s: %s\n", k.c_str(), how, ms, at,
                 error);
  else
    std::fprintf(stderr, "graph capture [%s] (%s) in %.1f ms at %.3f s, %zu kernels\n", k.c_str(), how, ms, at,
                 captured_kernels);
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
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
  bool captured_once = false;
  // Held by run() throughout and by prepare() but while it captures: a graph
  // is never dropped or added while the owner replays one.
  std::mutex mutex;
  // Keys that prepare() captures now: a second prepare() of one waits for
  // the first's outcome instead of capturing it again (joins that come at
  // once ask for the same shapes).
  std::set<std::vector<int64_t>> preparing;
  std::condition_variable prepared;

  // Captures step (nothing runs) into the cache's pool; throws when the step
  // cannot be captured.
  std::unique_ptr<at::cuda::CUDAGraph> capture(const std::function<void()> &step) {
    // A pool id of our own, not one capture_begin makes up: a failed
    // capture's pool must be named to be let go of (CUDAGraph::pool()
    // refuses until a capture has ended well).
    if (pool.first == 0 && pool.second == 0) pool = at::cuda::graph_pool_handle();
    return capture_in(pool, step);
  }

  std::unique_ptr<at::cuda::CUDAGraph> capture_in(at::cuda::MempoolId_t into, const std::function<void()> &step) {
    auto graph = std::make_unique<at::cuda::CUDAGraph>();
    std::lock_guard<std::mutex> capturing(capture_lock());
    on_thread_stream(device, [&] {
      ready_libraries();
      graph->capture_begin(into, cudaStreamCaptureModeThreadLocal);
      try {
        step();
        if (log_captures()) captured_kernels = kernels_in_capture(at::cuda::getCurrentCUDAStream().stream());
        graph->capture_end();
      } catch (...) {
        abandon(*graph, into);
        throw;
      }
    });
    return graph;
  }

  // cuBLAS handles and workspaces are made per thread and stream on first
  // use, and cannot be made while capturing: make them for this thread's
  // stream first (a thread that never ran the step eagerly, such as the
  // one capturing ahead, would otherwise fail with NOT_INITIALIZED).
  // cuDNN's handle likewise (attention and convolutions may run on it): a
  // tiny attention and convolution, eagerly, once per thread.
  void ready_libraries() {
    (void)at::cuda::getCurrentCUDABlasHandle();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    (void)at::cuda::getCurrentCUDABlasLtHandle();
#endif
    thread_local bool ready = false;
    if (ready) return;
    for (at::ScalarType t : {at::kBFloat16, at::kFloat}) {
      auto o = at::TensorOptions().device(device).dtype(t);
      at::Tensor q = at::randn({1, 2, 16, 64}, o);
      (void)at::scaled_dot_product_attention(q, q, q);
      (void)at::conv1d(at::randn({1, 4, 32}, o), at::randn({4, 4, 3}, o));
      (void)at::matmul(q, q.transpose(-1, -2));
    }
    ready = true;
  }

  // Ends a capture that failed. The allocator must stop routing this
  // thread's allocations to the graph's pool even when ending the capture
  // fails (CUDAGraph::capture_end throws before telling it so): a pool left
  // recording refuses every later capture into it.
  void abandon(at::cuda::CUDAGraph &graph, at::cuda::MempoolId_t into) {
    try {
      graph.capture_end();
      return;
    } catch (...) {
    }
    cudaGraph_t broken = nullptr;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    cudaStream_t stream = at::cuda::getCurrentCUDAStream().stream();
    if (cudaStreamIsCapturing(stream, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone &&
        cudaStreamEndCapture(stream, &broken) == cudaSuccess && broken)
      cudaGraphDestroy(broken);
    try {
      // The device the capture ran on: `device` may name no index.
      c10::cuda::CUDACachingAllocator::endAllocateToPool(c10::cuda::current_device(), into);
    } catch (...) {
      // capture_end got as far as that: nothing is left recording.
    }
    (void)cudaGetLastError();
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

  void keep(const std::vector<int64_t> &key, Entry &e, std::unique_ptr<at::cuda::CUDAGraph> graph) {
    e.graph = std::move(graph);
    captured_once = true;
    lru.push_front(key);
    e.used = lru.begin();
    evict();
  }

  bool run(const std::vector<int64_t> &key, const std::function<void()> &step) {
    std::lock_guard<std::mutex> lock(mutex);
    Entry &e = entries[key];
    if (e.graph) {
      lru.splice(lru.begin(), lru, e.used);
      e.graph->replay();
      return true;
    }
    const bool may_capture = (captured_once || e.calls >= options.warmup) && e.calls >= e.next_try &&
                             e.failures < options.max_failures;
    if (!may_capture) {
      ++e.calls;
      on_thread_stream(device, step);
      return false;
    }
    const auto t0 = std::chrono::steady_clock::now();
    try {
      e.graph = capture(step);
    } catch (const std::exception &x) {
      // Not sticky: clear it so that no later launch check reports it, run
      // this call eagerly, try again later.
      (void)cudaGetLastError();
      log_capture("at its call", key, ms_since(t0), x.what());
      ++failed;
      ++e.calls;
      e.next_try = e.calls + (options.retry_after << std::min<int64_t>(e.failures, 16));
      ++e.failures;
      on_thread_stream(device, step);
      return false;
    }
    log_capture("at its call", key, ms_since(t0), nullptr);
    std::unique_ptr<at::cuda::CUDAGraph> graph = std::move(e.graph);
    keep(key, e, std::move(graph));
    e.graph->replay();
    return true;
  }

  bool prepare(const std::vector<int64_t> &key, const std::function<void()> &step) {
    at::cuda::MempoolId_t shared;
    {
      std::unique_lock<std::mutex> lock(mutex);
      prepared.wait(lock, [&] { return preparing.count(key) == 0; });
      auto it = entries.find(key);
      if (it != entries.end() && it->second.graph) return true;
      if (!captured_once || (it != entries.end() && it->second.failures >= options.max_failures)) return false;
      if (pool.first == 0 && pool.second == 0) pool = at::cuda::graph_pool_handle();
      shared = pool;
      preparing.insert(key);
    }
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    const auto t0 = std::chrono::steady_clock::now();
    std::string error;
    try {
      graph = capture_in(shared, step);
    } catch (const std::exception &x) {
      error = x.what();
    } catch (...) {
      error = "unknown error";
    }
    if (!graph) (void)cudaGetLastError();
    log_capture("ahead", key, ms_since(t0), graph ? nullptr : error.c_str());
    bool kept = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      preparing.erase(key);
      Entry &e = entries[key];
      if (!graph) {
        ++failed;
        ++e.failures;  // counts toward max_failures like a failure at its call
      } else if (!e.graph && pool == shared) {
        keep(key, e, std::move(graph));
      }
      kept = bool(e.graph);
    }
    prepared.notify_all();
    return kept;
  }
};

GraphCache::GraphCache(const at::Device &device, bool use_graphs, GraphCacheOptions options)
    : impl_(std::make_unique<Impl>(device, use_graphs && available(device), options)) {}

bool GraphCache::run(const std::vector<int64_t> &key, const std::function<void()> &step) {
  if (impl_->enabled) return impl_->run(key, step);
  step();
  return false;
}

bool GraphCache::prepare(const std::vector<int64_t> &key, const std::function<void()> &step) {
  return impl_->enabled && impl_->prepare(key, step);
}

bool GraphCache::has(const std::vector<int64_t> &key) const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto it = impl_->entries.find(key);
  return it != impl_->entries.end() && it->second.graph != nullptr;
}

int64_t GraphCache::graphs() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return int64_t(impl_->lru.size());
}
int64_t GraphCache::failed_captures() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->failed;
}
void GraphCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->drop_all();
}

#else

struct GraphCache::Impl {
  bool enabled = false;
};

GraphCache::GraphCache(const at::Device &, bool, GraphCacheOptions) : impl_(std::make_unique<Impl>()) {}

bool GraphCache::run(const std::vector<int64_t> &, const std::function<void()> &step) {
  step();
  return false;
}

bool GraphCache::prepare(const std::vector<int64_t> &, const std::function<void()> &) { return false; }

bool GraphCache::has(const std::vector<int64_t> &) const { return false; }
int64_t GraphCache::graphs() const { return 0; }
int64_t GraphCache::failed_captures() const { return 0; }
void GraphCache::clear() {}

#endif

GraphCache::~GraphCache() = default;
GraphCache::GraphCache(GraphCache &&) noexcept = default;
GraphCache &GraphCache::operator=(GraphCache &&) noexcept = default;
bool GraphCache::enabled() const { return impl_->enabled; }

}  // namespace personaplex
