#include "core/thread_stream.h"

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <c10/core/Event.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>
#endif

namespace personaplex {

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
namespace {

class ThreadStreams {
 public:
  ~ThreadStreams() {
    for (auto &s : streams_) cudaStreamDestroy(s.second);
  }
  // The thread's stream number `which` (0: its own, 1: its side stream,
  // 2 on: its branch streams).
  c10::cuda::CUDAStream get(c10::DeviceIndex device, int which = 0) {
    if (device < 0) device = c10::cuda::current_device();  // "cuda" with no index: the current one
    auto it = streams_.find({device, which});
    if (it == streams_.end()) {
      c10::cuda::CUDAGuard guard(device);
      int least = 0, priority = 0;  // 0: the default, also the lowest
      if (high_priority) C10_CUDA_CHECK(cudaDeviceGetStreamPriorityRange(&least, &priority));
      cudaStream_t s = nullptr;
      C10_CUDA_CHECK(cudaStreamCreateWithPriority(&s, cudaStreamNonBlocking, priority));
      it = streams_.emplace(std::make_pair(device, which), s).first;
    }
    return c10::cuda::getStreamFromExternal(it->second, device);
  }

  bool high_priority = false;  // for streams created from now on

 private:
  std::map<std::pair<c10::DeviceIndex, int>, cudaStream_t> streams_;
};

thread_local ThreadStreams streams;

// Runs fn with `stream` current, after `ready`; the event recorded after it.
c10::Event run_after(const c10::Event &ready, c10::cuda::CUDAStream stream, const std::function<void()> &fn) {
  ready.block(stream);
  {
    c10::cuda::CUDAStreamGuard guard(stream);
    fn();
  }
  c10::Event done(c10::DeviceType::CUDA);
  done.record(stream);
  return done;
}

// An event recorded now on the current stream of `device`.
c10::Event recorded_now(const at::Device &device) {
  c10::Event e(c10::DeviceType::CUDA);
  e.record(c10::cuda::getCurrentCUDAStream(device.index()));
  return e;
}

}  // namespace

c10::cuda::CUDAStream thread_side_stream(c10::DeviceIndex device) { return streams.get(device, 1); }

void prefer_high_priority_streams() { streams.high_priority = true; }

void on_thread_stream(const at::Device &device, const std::function<void()> &fn) {
  if (!device.is_cuda()) {
    fn();
    return;
  }
  run_after(recorded_now(device), streams.get(device.index()), fn)
      .block(c10::cuda::getCurrentCUDAStream(device.index()));
}

void on_thread_stream_and_wait(const at::Device &device, const std::function<void()> &fn) {
  if (!device.is_cuda()) {
    fn();
    return;
  }
  c10::cuda::CUDAStream own = streams.get(device.index());
  run_after(recorded_now(device), own, fn);
  own.synchronize();
}

void on_thread_branches(const at::Device &device, int64_t count, const std::function<void(int64_t)> &fn) {
  if (!device.is_cuda() || count <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  const c10::Event ready = recorded_now(device);
  std::vector<c10::Event> done;
  done.reserve(size_t(count - 1));
  for (int64_t i = 1; i < count; ++i)
    done.push_back(run_after(ready, streams.get(device.index(), int(1 + i)), [&] { fn(i); }));
  fn(0);
  for (c10::Event &e : done) e.block(c10::cuda::getCurrentCUDAStream(device.index()));
}

void synchronize_current_stream(const at::Device &device) {
  if (device.is_cuda()) c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
}

struct SideWork::Impl {
  std::optional<c10::Event> done;  // recorded on the side stream after the last run()
};

void SideWork::run(const at::Device &device, const std::function<void()> &fn) {
  if (!device.is_cuda()) {
    fn();
    return;
  }
  impl_->done.emplace(run_after(recorded_now(device), thread_side_stream(device.index()), fn));
}

void SideWork::join(const at::Device &device) {
  if (!device.is_cuda() || !impl_->done) return;
  impl_->done->block(c10::cuda::getCurrentCUDAStream(device.index()));
  impl_->done.reset();
}

#else

void prefer_high_priority_streams() {}
void on_thread_stream(const at::Device &, const std::function<void()> &fn) { fn(); }
void on_thread_stream_and_wait(const at::Device &, const std::function<void()> &fn) { fn(); }
void on_thread_branches(const at::Device &, int64_t count, const std::function<void(int64_t)> &fn) {
  for (int64_t i = 0; i < count; ++i) fn(i);
}
void synchronize_current_stream(const at::Device &) {}

struct SideWork::Impl {};
void SideWork::run(const at::Device &, const std::function<void()> &fn) { fn(); }
void SideWork::join(const at::Device &) {}

#endif

SideWork::SideWork() : impl_(std::make_unique<Impl>()) {}
SideWork::~SideWork() = default;

}  // namespace personaplex
