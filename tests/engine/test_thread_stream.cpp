// The calling thread's own streams (core/thread_stream.h).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/thread_stream.h"

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
#include <ATen/cuda/Sleep.h>
#include <c10/core/Event.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

using namespace personaplex;

TEST(ThreadStream, RunsInTurnOffCuda) {
  const at::Device cpu(at::kCPU);
  int runs = 0;
  on_thread_stream(cpu, [&] { ++runs; });
  on_thread_stream_and_wait(cpu, [&] { ++runs; });
  EXPECT_EQ(runs, 2);
}

#ifdef PERSONAPLEX_HAVE_CUDA_GRAPHS
// A join's prompts run apart: work queued on the shared default stream while
// they run (a batch's next step) does not wait for them, and the thread that
// ran them returns only once they are done. Under on_thread_stream the
// default stream's work would wait for the whole of it.
TEST(ThreadStream, CudaWorkApartHoldsUpNoOtherThread) {
  if (c10::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA, 0);
  c10::cuda::CUDAStream shared = c10::cuda::getDefaultCUDAStream(0);
  // This thread's kernels run once first: a kernel's first launch may load
  // its module, which waits for the whole device (CUDA's lazy loading).
  at::Tensor x = at::ones({4}, at::TensorOptions(cuda));
  x.add_(1.0);
  shared.synchronize();
  c10::Event slept(c10::DeviceType::CUDA);
  std::atomic<bool> queued{false}, returned{false};
  std::thread apart([&] {
    on_thread_stream_and_wait(cuda, [&] {
      at::cuda::sleep(int64_t(2) << 30);  // about a second of a GPU's clock
      slept.record(c10::cuda::getCurrentCUDAStream(0));
      queued = true;
    });
    returned = true;
  });
  while (!queued) std::this_thread::yield();
  // Whatever the thread queues once fn has returned is queued by now.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    c10::cuda::CUDAStreamGuard on_shared(shared);
    x.add_(1.0);
  }
  shared.synchronize();
  EXPECT_FALSE(slept.query()) << "the shared stream waited for the work apart";
  apart.join();
  EXPECT_TRUE(returned.load());
  EXPECT_TRUE(slept.query());
  EXPECT_EQ(x.sum().item<float>(), 12.0f);
}

// A thread that prefers high-priority streams (a batch's stepping thread)
// creates its own at the device's highest priority; other threads' stay at
// the default. Work on it stays ordered with the shared default stream.
TEST(ThreadStream, CudaHighPriorityStreamsAreTheThreadsOwn) {
  if (c10::cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device";
  const at::Device cuda(at::kCUDA, 0);
  int least = 0, greatest = 0;
  ASSERT_EQ(cudaDeviceGetStreamPriorityRange(&least, &greatest), cudaSuccess);
  auto priority_on_own_stream = [&](bool high) {
    int priority = 1;
    std::thread t([&] {
      if (high) prefer_high_priority_streams();
      on_thread_stream(cuda, [&] {
        EXPECT_EQ(cudaStreamGetPriority(c10::cuda::getCurrentCUDAStream(0).stream(), &priority), cudaSuccess);
      });
    });
    t.join();
    return priority;
  };
  EXPECT_EQ(priority_on_own_stream(true), greatest);
  EXPECT_EQ(priority_on_own_stream(false), 0);
  at::Tensor x = at::zeros({1 << 20}, at::TensorOptions(cuda));
  std::thread t([&] {
    prefer_high_priority_streams();
    on_thread_stream(cuda, [&] { x.add_(2.0); });
    x.mul_(3.0);  // on the default stream: after the add
  });
  t.join();
  EXPECT_EQ(x.sum().item<float>(), float(6 << 20));
}
#endif
