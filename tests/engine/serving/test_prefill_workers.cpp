#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "serving/lockstep_batch.h"
#include "serving/prefill_workers.h"
#include "test_util.h"

using personaplex::serving::PrefillWorkers;

// Callers' work runs on the workers' threads, which stay the same from one
// call to the next (what keeps them warm).
TEST(PrefillWorkers, RunsOnLongLivedThreads) {
  PrefillWorkers workers(2);
  std::set<std::thread::id> seen;
  for (int i = 0; i < 20; ++i) {
    std::thread::id id;
    workers.run([&] { id = std::this_thread::get_id(); });
    EXPECT_NE(id, std::this_thread::get_id());
    seen.insert(id);
  }
  EXPECT_LE(seen.size(), 2u);
  EXPECT_GE(seen.size(), 1u);
}

TEST(PrefillWorkers, RethrowsToTheCaller) {
  PrefillWorkers workers(1);
  EXPECT_THROW(workers.run([] { throw std::runtime_error("bad prompt"); }), std::runtime_error);
  int ran = 0;
  workers.run([&] { ++ran; });  // the worker survived
  EXPECT_EQ(ran, 1);
}

// Every worker once, each on its own thread, all at once.
TEST(PrefillWorkers, RunOnEachReachesEveryWorker) {
  PrefillWorkers workers(3);
  std::mutex m;
  std::set<std::thread::id> threads;
  std::set<int64_t> indices;
  std::atomic<int> inside{0};
  std::atomic<bool> together{false};
  workers.run_on_each([&](int64_t i) {
    if (++inside == 3) together = true;
    // Waits (bounded) until all three are in: they run concurrently.
    for (int spin = 0; spin < 2000 && !together; ++spin) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard<std::mutex> lock(m);
    threads.insert(std::this_thread::get_id());
    indices.insert(i);
  });
  EXPECT_TRUE(together);
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_EQ(indices, (std::set<int64_t>{0, 1, 2}));
  EXPECT_THROW(workers.run_on_each([](int64_t i) {
                 if (i == 1) throw std::runtime_error("worker 1");
               }),
               std::runtime_error);
}

// Calls from many threads at once all get their work done.
TEST(PrefillWorkers, ManyCallersAtOnce) {
  PrefillWorkers workers(2);
  std::atomic<int> done{0};
  std::vector<std::thread> callers;
  for (int i = 0; i < 16; ++i) callers.emplace_back([&] { workers.run([&] { ++done; }); });
  for (auto &t : callers) t.join();
  EXPECT_EQ(done.load(), 16);
}

TEST(PrefillWorkers, RefusesNoThreads) { EXPECT_ANY_THROW(PrefillWorkers(0)); }

// How many a batch has: two (eight when joins share passes) unless
// PERSONAPLEX_PREFILL_WORKERS names 1-8.
TEST(PrefillWorkers, ABatchsCountFromTheEnvironment) {
  using personaplex::serving::LockstepBatch;
  EXPECT_EQ(LockstepBatch::prefill_workers(), 2);
  for (const char *bad : {"0", "9", "-1", "4x", "two"}) {
    personaplex::test::ScopedEnv env("PERSONAPLEX_PREFILL_WORKERS", bad);
    EXPECT_EQ(LockstepBatch::prefill_workers(), 2) << bad;
  }
  {
    personaplex::test::ScopedEnv together("PERSONAPLEX_PREFILL_TOGETHER_MS", "5");
    EXPECT_EQ(LockstepBatch::prefill_workers(), 8);  // prompts that share passes need company
  }
  personaplex::test::ScopedEnv four("PERSONAPLEX_PREFILL_WORKERS", "4");
  EXPECT_EQ(LockstepBatch::prefill_workers(), 4);
}
