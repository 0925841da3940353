#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/shared_cache.h"

using personaplex::SharedCache;

namespace {

struct Model {
  explicit Model(int v) : value(v) {}
  int value;
};

}  // namespace

TEST(SharedCache, SameKeySharesOneObject) {
  SharedCache<Model> cache;
  int loads = 0;
  auto load = [&] { ++loads; return std::make_shared<const Model>(7); };
  auto a = cache.get("w|cpu", load);
  auto b = cache.get("w|cpu", load);
  EXPECT_EQ(a.get(), b.get());
  EXPECT_EQ(loads, 1);
  EXPECT_EQ(cache.find("w|cpu").get(), a.get());
}

TEST(SharedCache, DifferentKeysLoadSeparately) {
  SharedCache<Model> cache;
  auto a = cache.get("w|cpu", [] { return std::make_shared<const Model>(1); });
  auto b = cache.get("w|cuda", [] { return std::make_shared<const Model>(2); });
  EXPECT_NE(a.get(), b.get());
  EXPECT_EQ(a->value, 1);
  EXPECT_EQ(b->value, 2);
}

TEST(SharedCache, FreedWhenLastUserGoesAndReloadedAfter) {
  SharedCache<Model> cache;
  std::weak_ptr<const Model> watch;
  int loads = 0;
  auto load = [&] { ++loads; return std::make_shared<const Model>(3); };
  {
    auto a = cache.get("k", load);
    auto b = cache.get("k", load);
    watch = a;
  }
  EXPECT_TRUE(watch.expired());
  EXPECT_EQ(cache.find("k"), nullptr);
  auto c = cache.get("k", load);
  EXPECT_EQ(loads, 2);
  EXPECT_EQ(c->value, 3);
}

TEST(SharedCache, FailedLoadLeavesNothingAndRetries) {
  SharedCache<Model> cache;
  EXPECT_THROW(cache.get("bad", []() -> std::shared_ptr<const Model> {
    throw std::runtime_error("corrupt file");
  }), std::runtime_error);
  EXPECT_EQ(cache.find("bad"), nullptr);
  auto ok = cache.get("bad", [] { return std::make_shared<const Model>(5); });
  EXPECT_EQ(ok->value, 5);
}

TEST(SharedCache, ConcurrentRequestsLoadOnce) {
  SharedCache<Model> cache;
  std::atomic<int> loads{0};
  auto load = [&] {
    ++loads;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return std::make_shared<const Model>(9);
  };
  std::vector<std::shared_ptr<const Model>> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = cache.get("shared", load); });
  for (auto &t : threads) t.join();
  EXPECT_EQ(loads.load(), 1);
  for (auto &m : got) EXPECT_EQ(m.get(), got[0].get());
}

TEST(SharedCache, SlowLoadDoesNotBlockOtherKeys) {
  SharedCache<Model> cache;
  std::atomic<bool> release{false};
  std::thread slow([&] {
    cache.get("slow", [&] {
      while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return std::make_shared<const Model>(1);
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  // Would dead-lock if the slow load held the cache-wide lock.
  auto fast = cache.get("fast", [] { return std::make_shared<const Model>(2); });
  EXPECT_EQ(fast->value, 2);
  release = true;
  slow.join();
}

TEST(SharedCache, ProcessWideInstanceIsOne) {
  EXPECT_EQ(&personaplex::shared_cache<Model>(), &personaplex::shared_cache<Model>());
}
