// Runs a step function eagerly, or on CUDA (libtorch 2.x built with CUDA)
// through CUDA graphs: the first call of each variant runs eagerly (warming up
// kernels and workspaces), the second captures it, later ones replay it. The
// function must read its inputs from, and write its outputs to, tensors that
// outlive the runner, and must not synchronize with the host.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include <ATen/ATen.h>

namespace personaplex::lm {

class StepRunner {
 public:
  StepRunner(const at::Device &device, bool use_graphs);
  ~StepRunner();
  StepRunner(StepRunner &&) noexcept;
  StepRunner &operator=(StepRunner &&) noexcept;

  // `variant` tells apart step functions of different shapes or code paths.
  void run(int64_t variant, const std::function<void()> &step);
  // Drops the captured graphs (their inputs or shapes changed).
  void clear();
  // Whether graphs are in use (false on CPU, without CUDA, or after a
  // capture failed and the runner fell back to eager execution).
  bool graphs() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex::lm
