// CUDA graphs of one step function, the one way the engine captures them
// (the LM's conversation step, the batch server's step, Mimi's frame steps).
//
// Before the cache's first capture, the first `warmup` calls run eagerly
// (loading kernels, setting up library workspaces on the capture stream);
// after it, a new key is captured at its first call. Later calls of a key
// replay its graph on the caller's stream. prepare() captures a key ahead of
// its first call, from another thread, while the owner keeps replaying. The step must read its inputs from and write its outputs
// to tensors that outlive the cache, and must not synchronize with the host.
// A cache's graphs share one memory pool: they never run concurrently (one
// owner calls run()), so the pool holds one step's temporaries. The least
// recently used graph is dropped past `max_graphs`.
//
// Safe while other threads keep using the GPU (each session's streaming
// thread, the batch thread): captures and warm-up calls run on a stream
// owned by the calling thread alone and created non-blocking (no other
// thread can launch work onto it, and work on the legacy default stream
// never waits for it), in thread-local capture mode, one capture at a time
// per process. A capture that fails anyway is not an error: the error is
// cleared, that call runs eagerly, and the key is tried again later
// (`retry_after` calls); after `max_failures` failures of one key it stays
// eager.
//
// PERSONAPLEX_GRAPH_LOG=1 in the environment prints a line per capture
// (key, milliseconds and the kernels captured, or the reason it failed) on
// standard error.
//
// Eager throughout when graphs are not compiled in (a CUDA libtorch 2.x and
// the CUDA runtime's headers: PERSONAPLEX_HAVE_CUDA_GRAPHS), the device is not
// CUDA, or PERSONAPLEX_CUDA_GRAPHS=0 is in the environment.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace personaplex {

struct GraphCacheOptions {
  int64_t warmup = 1;         // eager calls per key before its capture
  size_t max_graphs = 64;     // graphs kept, least recently used dropped
  int64_t retry_after = 8;    // calls of a key after its first failed capture before the next
                              // try; doubled after each further failure
  int64_t max_failures = 8;   // failed captures of a key before it stays eager
};

class GraphCache {
 public:
  GraphCache(const at::Device &device, bool use_graphs, GraphCacheOptions options = {});
  ~GraphCache();
  GraphCache(GraphCache &&) noexcept;
  GraphCache &operator=(GraphCache &&) noexcept;

  // Runs the step of `key`; true when it was a graph replay.
  bool run(const std::vector<int64_t> &key, const std::function<void()> &step);
  // Captures the step of `key` without running it, unless it is captured
  // already or the cache has not captured anything yet; true when the key
  // has a graph now. Safe from any thread while run() is called: the step
  // must then read only what stays valid (the tensors that outlive the cache)
  // and change nothing on the host.
  bool prepare(const std::vector<int64_t> &key, const std::function<void()> &step);
  // Whether `key` has a graph now (its next run() replays it).
  bool has(const std::vector<int64_t> &key) const;
  // Whether graphs are in use (compiled in, CUDA, turned on).
  bool enabled() const;
  int64_t graphs() const;           // captured and kept
  int64_t failed_captures() const;  // since construction
  // Drops every graph (their inputs' addresses or shapes changed).
  void clear();

  // Compiled in, CUDA device, and not turned off by PERSONAPLEX_CUDA_GRAPHS=0.
  static bool available(const at::Device &device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex
