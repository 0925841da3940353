#include "core/thread_stream.h"

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <c10/core/Event.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <map>
#include <utility>
#endif

namespace personaplex {

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
namespace {

class ThreadStreams {
 public:
  ~ThreadStreams() {
    for (auto &s : streams_) cudaStreamDestroy(s.second);
  }
  // The thread's stream number `which` (0: its own, 1: its side stream).
  c10::cuda::CUDAStream get(c10::DeviceIndex device, int which = 0) {
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

void synchronize_current_stream(const at::Device &device) {
  if (device.is_cuda()) c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
}

#else

void on_thread_stream(const at::Device &, const std::function<void()> &fn) { fn(); }
void synchronize_current_stream(const at::Device &) {}

#endif

}  // namespace personaplex
