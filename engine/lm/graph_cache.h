// CUDA graphs of one step function whose shape takes a few values (the
// batch server's rows, attention span...): per key, the first calls run
// eagerly on a side stream (warming kernels, cuBLAS workspaces), the next
// one captures the step there, later ones replay it on the caller's stream.
// All graphs share one memory pool: they never run concurrently and keep
// nothing allocated between runs (the step reads and writes only tensors
// that outlive the cache), so the pool holds one step's temporaries, not
// one per graph. The least recently used graph is dropped past a limit.
//
// Falls back to eager execution for good, silently, when graphs are not
// compiled in (PERSONAPLEX_HAVE_CUDA_GRAPHS, libtorch 2.x), the device is
// not CUDA, PERSONAPLEX_CUDA_GRAPHS=0, or a capture fails.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace personaplex::lm {

class GraphCache {
 public:
  GraphCache(const at::Device &device, bool use_graphs, size_t max_graphs = 64, int64_t warmup = 1);
  ~GraphCache();
  GraphCache(GraphCache &&) noexcept;
  GraphCache &operator=(GraphCache &&) noexcept;

  // Runs the step of `key`; true when it was a graph replay.
  bool run(const std::vector<int64_t> &key, const std::function<void()> &step);
  // Whether graphs may still be used (compiled in, CUDA, enabled, no
  // failed capture).
  bool enabled() const;
  int64_t graphs() const;  // captured and kept
  void clear();

  // Compiled in, CUDA device, and not turned off by PERSONAPLEX_CUDA_GRAPHS=0.
  static bool available(const at::Device &device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex::lm
