// The graph cache (core/graph_cache.h): eager off CUDA; on CUDA, a key
// prepared from several threads at once is captured once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "core/graph_cache.h"
#include "core/thread_stream.h"

using namespace personaplex;

TEST(GraphCache, RunsEagerlyOnTheCpu) {
  GraphCache cache(at::Device(at::kCPU), true);
  EXPECT_FALSE(cache.enabled());
  int runs = 0;
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cache.run({1, 2}, [&] { ++runs; }));
  EXPECT_EQ(runs, 3);
  EXPECT_FALSE(cache.prepare({3}, [&] { ++runs; }));
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(cache.graphs(), 0);
}

// Joins that come at once ask for the same shapes ahead: the first thread
// captures, the others take its graph (a capture is tens of milliseconds
// of a join's start, and one capture runs at a time per process).
TEST(GraphCache, CudaPreparesOfOneKeyCaptureOnce) {
  const at::Device cuda(at::kCUDA);
  if (!GraphCache::available(cuda)) GTEST_SKIP() << "no CUDA graphs";
  at::Tensor x = at::zeros({16}, at::TensorOptions(cuda).dtype(at::kFloat));
  GraphCache cache(cuda, true);
  for (int i = 0; i < 2; ++i) cache.run({0}, [&] { x.add_(1.0); });  // the cache's first capture
  ASSERT_EQ(cache.graphs(), 1);

  std::atomic<int> captures{0}, ready{0};
  const int threads = 4;
  std::vector<std::thread> pool;
  std::vector<int> kept(threads, 0);
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ++ready;
      while (ready.load() < threads) std::this_thread::yield();
      kept[size_t(t)] = cache.prepare({1}, [&] {
        ++captures;
        // Long enough that every thread asks while this capture runs.
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        x.mul_(2.0);
      });
    });
  for (std::thread &t : pool) t.join();
  EXPECT_EQ(captures.load(), 1);
  for (int t = 0; t < threads; ++t) EXPECT_TRUE(kept[size_t(t)]) << "thread " << t;
  EXPECT_EQ(cache.graphs(), 2);
  EXPECT_EQ(cache.failed_captures(), 0);

  // The graph prepared is the step: x (2 after the first key's two runs) doubled.
  EXPECT_TRUE(cache.run({1}, [&] { x.mul_(2.0); }));
  synchronize_current_stream(cuda);
  EXPECT_TRUE(at::equal(x.cpu(), at::full({16}, 4.0f)));
}
