// A CUDA stream beside the caller's, for graph capture (which cannot use
// the default stream) and the warm-up calls before it (so that libraries set
// up their per-stream resources on the stream that will be captured). Work
// run there is ordered after the caller's stream's work so far and before
// its later work. Only for builds with CUDA graphs (PERSONAPLEX_HAVE_CUDA_GRAPHS).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>

namespace personaplex {

class SideStream {
 public:
  template <typename Fn>
  void run(const c10::Device &device, Fn fn) {
    c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
    if (!side_) side_ = c10::cuda::getStreamFromPool(false, device.index());
    c10::Event ready(c10::DeviceType::CUDA);
    ready.record(caller);
    ready.block(*side_);
    {
      c10::cuda::CUDAStreamGuard guard(*side_);
      fn();
    }
    c10::Event done(c10::DeviceType::CUDA);
    done.record(*side_);
    done.block(caller);
  }

 private:
  std::optional<c10::cuda::CUDAStream> side_;
};

}  // namespace personaplex
