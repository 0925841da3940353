// Weights kept in host memory and copied to the GPU when they are needed:
// what lets a model larger than the GPU's memory run, at the cost of the copy.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <vector>

namespace personaplex {

// `t` copied to host memory that `device` can copy from asynchronously: page-
// locked when `device` is CUDA (so the copy can also be captured in a CUDA
// graph), ordinary host memory otherwise.
at::Tensor to_host_for(const at::Tensor &t, const at::Device &device);

// Copies host tensors to `device` on the calling thread's side stream, so that
// they run while the work queued on its current stream does. Each upload
// starts after the current stream's work so far; the current stream may use
// its copies once wait() has been called for it. Every started upload must be
// waited for (a CUDA graph capture must join the side stream back). Off CUDA,
// the copies are made at once.
class HostUpload {
 public:
  explicit HostUpload(const at::Device &device);
  ~HostUpload();
  HostUpload(const HostUpload &) = delete;
  HostUpload &operator=(const HostUpload &) = delete;

  // Starts copying `host` (from to_host_for) to the device; returns a ticket
  // for wait() and puts the device tensors (allocated on the current
  // stream) in `copies`.
  size_t start(const std::vector<at::Tensor> &host, std::vector<at::Tensor> &copies);
  // The current stream waits for upload `ticket` before its later work.
  void wait(size_t ticket);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex
