// The calling thread's own CUDA stream: created non-blocking for the thread
// on first use and released with it. No other thread ever launches work onto
// it, and work on the legacy default stream never waits for it, so what runs
// there (a graph capture, a new conversation's prompts) neither takes in nor
// holds up other threads' GPU work.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <c10/cuda/CUDAStream.h>
#endif

namespace personaplex {

// Runs fn with the thread's own stream as the current stream of `device`,
// after the caller's stream's work so far and before its later work. Off
// CUDA (or in a build without CUDA), runs fn as it is.
void on_thread_stream(const at::Device &device, const std::function<void()> &fn);

// Runs fn as on_thread_stream does, then blocks the calling thread until
// what fn queued has run; the caller's stream is not made to wait for it.
// For long work a thread does apart from the others (a join's prompts):
// the caller's current stream is often the process's shared default
// stream, and a wait queued there would hold up whatever any other thread
// queues on it next (a batch's steps) until this work is done.
void on_thread_stream_and_wait(const at::Device &device, const std::function<void()> &fn);

// From now on the streams the calling thread creates for itself (its own,
// side and branch streams) have the device's highest priority: the GPU
// starts their kernels' blocks before those of other streams waiting for
// room. For a thread whose work others must not hold up (a batch's steps)
// beside threads whose work can wait (joins' prompts). Off CUDA a no-op.
void prefer_high_priority_streams();

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
// A second stream of the calling thread alone, created as the first is: for
// work that runs beside the thread's current stream (copies ahead of use).
c10::cuda::CUDAStream thread_side_stream(c10::DeviceIndex device);
#endif

// Runs fn(0), ..., fn(count - 1) at once: fn(0) on the current stream of
// `device`, the others each on a branch stream of the calling thread, all
// after the current stream's work so far and before its later work (a fork
// and a join, which a graph capture keeps as parallel branches). What fn
// writes is best allocated before, on the current stream. Off CUDA, in
// turn.
void on_thread_branches(const at::Device &device, int64_t count, const std::function<void(int64_t)> &fn);

// Work queued beside the calling thread's current stream of a device: run()
// queues fn on the thread's side stream, after the current stream's work so
// far; join() makes what the current stream queues next wait for it. For
// launches the host makes while the GPU is busy, kept off the stream that
// the next result is read from. Off CUDA, run() runs fn at once and join()
// does nothing.
class SideWork {
 public:
  SideWork();
  ~SideWork();
  SideWork(const SideWork &) = delete;
  SideWork &operator=(const SideWork &) = delete;
  void run(const at::Device &device, const std::function<void()> &fn);
  void join(const at::Device &device);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace personaplex

namespace personaplex {

// Blocks until the work queued so far on the calling thread's current
// stream of `device` has run (tensors made there may then be read from any
// stream, or freed). A no-op off CUDA.
void synchronize_current_stream(const at::Device &device);

}  // namespace personaplex
