#include "core/host_upload.h"

#include <algorithm>
#include <string>

#include "core/error.h"

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <c10/core/Event.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include "core/thread_stream.h"
#endif

namespace personaplex {

at::Tensor to_host_for(const at::Tensor &t, const at::Device &device) {
  const at::Tensor src = t.contiguous();
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  if (device.is_cuda()) {
    // Allocated here rather than by libtorch's pinned allocator, whose
    // bookkeeping of asynchronous copies is not meant for graph capture;
    // freed with the last tensor that holds it.
    void *p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, std::max<size_t>(src.nbytes(), 1), cudaHostAllocPortable);
    if (e != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it
      throw Error("cannot lock " + std::to_string(src.nbytes()) + " bytes of host memory for weights kept there: " +
                  cudaGetErrorString(e));
    }
    at::Tensor host = at::from_blob(
        p, src.sizes(), [](void *q) { cudaFreeHost(q); }, at::TensorOptions().dtype(src.scalar_type()));
    host.copy_(src);
    return host;
  }
#endif
  (void)device;
  return src.to(at::kCPU, /*non_blocking=*/false, /*copy=*/true);
}

struct HostUpload::Impl {
  at::Device device;
  size_t started = 0;
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  std::vector<c10::Event> done;  // one per upload, on CUDA
#endif
};

HostUpload::HostUpload(const at::Device &device) : impl_(new Impl{device}) {}
HostUpload::~HostUpload() = default;

size_t HostUpload::start(const std::vector<at::Tensor> &host, std::vector<at::Tensor> &copies) {
  const at::Device &device = impl_->device;
  copies.clear();
  for (const auto &h : host) copies.push_back(at::empty(h.sizes(), h.options().device(device)));
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  if (device.is_cuda()) {
    c10::cuda::CUDAStream caller = c10::cuda::getCurrentCUDAStream(device.index());
    c10::cuda::CUDAStream side = thread_side_stream(device.index());
    c10::Event ready(c10::DeviceType::CUDA);
    ready.record(caller);  // the copies' memory may have been freed by work queued there
    ready.block(side);
    for (size_t i = 0; i < host.size(); ++i)
      C10_CUDA_CHECK(cudaMemcpyAsync(copies[i].data_ptr(), host[i].data_ptr(), host[i].nbytes(),
                                     cudaMemcpyHostToDevice, side.stream()));
    impl_->done.emplace_back(c10::DeviceType::CUDA);
    impl_->done.back().record(side);
    return impl_->started++;
  }
#endif
  for (size_t i = 0; i < host.size(); ++i) copies[i].copy_(host[i]);
  return impl_->started++;
}

void HostUpload::wait(size_t ticket) {
  if (ticket >= impl_->started) throw Error("HostUpload::wait: no upload " + std::to_string(ticket));
#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
  if (impl_->device.is_cuda()) impl_->done[ticket].block(c10::cuda::getCurrentCUDAStream(impl_->device.index()));
#endif
}

}  // namespace personaplex
