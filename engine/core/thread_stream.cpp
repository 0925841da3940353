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
      cudaStream_t s = nullptr;
      C10_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      it = streams_.emplace(std::make_pair(device, which), s).first;
    }
    return c10::cuda::getStreamFromExternal(it->second, device);
  }

 private:
  std::map<std::pair<c10::DeviceIndex, int>, cudaStream_t> streams_;
};

thread_local ThreadStreams streams;

}  // namespace

c10::cuda::CUDAStream thread_side_stream(c10::DeviceIndex device) { return streams.get(device, 1); }

void on_thread_stream(const at::Device &device, const std::function<void()> &fn) {
  if (!device.is_cuda()) {
    fn();
    return;
  }
  c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
  c10::cuda::CUDAStream own = streams.get(device.index());
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

void on_thread_branches(const at::Device &device, int64_t count, const std::function<void(int64_t)> &fn) {
  if (!device.is_cuda() || count <= 1) {
    for (int64_t i = 0; i < count; ++i) fn(i);
    return;
  }
  c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
  c10::Event ready(c10::DeviceType::CUDA);
  ready.record(caller);
  std::vector<c10::Event> done;
  done.reserve(size_t(count - 1));
  for (int64_t i = 1; i < count; ++i) {
    c10::cuda::CUDAStream branch = streams.get(device.index(), int(1 + i));
    ready.block(branch);
    {
      c10::cuda::CUDAStreamGuard guard(branch);
      fn(i);
    }
    done.emplace_back(c10::DeviceType::CUDA);
    done.back().record(branch);
  }
  fn(0);
  for (c10::Event &e : done) e.block(caller);
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
  c10::cuda::CUDAStream side = thread_side_stream(device.index());
  c10::Event ready(c10::DeviceType::CUDA);
  ready.record(c10::cuda::getCurrentCUDAStream(device.index()));
  ready.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    fn();
  }
  impl_->done.emplace(c10::DeviceType::CUDA);
  impl_->done->record(side);
}

void SideWork::join(const at::Device &device) {
  if (!device.is_cuda() || !impl_->done) return;
  impl_->done->block(c10::cuda::getCurrentCUDAStream(device.index()));
  impl_->done.reset();
}

#else

void on_thread_stream(const at::Device &, const std::function<void()> &fn) { fn(); }
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
