// Prompt chunks of several conversations prefilled in one pass
// (temporal_prefill_chunks, PrefillRendezvous): the same caches as each
// chunk prefilled alone, and chunks from threads that come together met in
// one pass.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "lm/prefill_rendezvous.h"
#include "lm/random_weights.h"
#include "lm/temporal.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;
using std::chrono::milliseconds;

namespace {

LmWeights weights_of(const LmConfig &c) { return *random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 5, 0.2); }

// A state that has already run `steps` steps alone (a voice phase, say).
TemporalState state_after(const LmWeights &w, int64_t steps) {
  TemporalState s = new_temporal_state(w);
  if (steps > 0) temporal_prefill(w, at::randn({1, steps, w.config.dim}), s);
  return s;
}

void expect_same_cache(const TemporalState &a, const TemporalState &b, int64_t layers) {
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.kv.end(), b.kv.end());
  EXPECT_TRUE(at::equal(a.kv.written(), b.kv.written()));
  for (size_t l = 0; l < size_t(layers); ++l) {
    EXPECT_TRUE(at::allclose(a.kv.layer(l).keys, b.kv.layer(l).keys, 1e-4, 1e-5)) << "layer " << l;
    EXPECT_TRUE(at::allclose(a.kv.layer(l).values, b.kv.layer(l).values, 1e-4, 1e-5)) << "layer " << l;
  }
}

}  // namespace

// Chunks of different lengths, at different places in their caches: one
// pass writes what each chunk alone writes, and returns its outputs.
TEST(PrefillRendezvous, ChunksInOnePassAreEachAlone) {
  at::manual_seed(11);
  const LmConfig c = test::tiny_lm_config(48, 4, 2, 64);
  const LmWeights w = weights_of(c);
  const std::vector<int64_t> before = {0, 5, 12}, lengths = {9, 3, 17};
  std::vector<TemporalState> alone, together;
  std::vector<at::Tensor> inputs, outputs;
  for (size_t i = 0; i < before.size(); ++i) {
    at::manual_seed(int64_t(100 + i));
    alone.push_back(state_after(w, before[i]));
    at::manual_seed(int64_t(100 + i));
    together.push_back(state_after(w, before[i]));
    inputs.push_back(at::randn({1, lengths[i], c.dim}));
    outputs.push_back(temporal_prefill(w, inputs.back(), alone.back()));
  }
  std::vector<PrefillChunk> chunks;
  for (size_t i = 0; i < before.size(); ++i) chunks.push_back(PrefillChunk{inputs[i], &together[i]});
  const std::vector<at::Tensor> out = temporal_prefill_chunks(w, chunks);
  ASSERT_EQ(out.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    SCOPED_TRACE("chunk " + std::to_string(i));
    EXPECT_TRUE(at::allclose(out[i], outputs[i], 1e-4, 1e-5));
    expect_same_cache(alone[i], together[i], c.num_layers);
  }
}

// A chunk that would not fit its cache fails the pass before anything runs.
TEST(PrefillRendezvous, AChunkPastItsCacheFailsThePass) {
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 16);
  const LmWeights w = weights_of(c);
  TemporalState a = new_temporal_state(w), b = new_temporal_state(w);
  EXPECT_THROW(temporal_prefill_chunks(w, {PrefillChunk{at::randn({1, 4, c.dim}), &a},
                                           PrefillChunk{at::randn({1, kv_capacity(c) + 1, c.dim}), &b}}),
               Error);
  EXPECT_EQ(a.offset, 0);
  EXPECT_EQ(b.offset, 0);
}

// Threads expected together bring their chunks to one pass; the caches are
// what each chunk alone gives.
TEST(PrefillRendezvous, ThreadsExpectedTogetherShareOnePass) {
  at::manual_seed(12);
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 100);
  const LmWeights w = weights_of(c);
  PrefillRendezvous rendezvous(milliseconds(2000), 1024);
  const int n = 4;
  std::vector<TemporalState> alone, together;
  std::vector<at::Tensor> inputs;
  for (int i = 0; i < n; ++i) {
    alone.push_back(new_temporal_state(w));
    together.push_back(new_temporal_state(w));
    inputs.push_back(at::randn({1, 3 + 2 * i, c.dim}));
    temporal_prefill(w, inputs.back(), alone.back());
  }
  std::vector<std::unique_ptr<PrefillRendezvous::Expecting>> expected;
  for (int i = 0; i < n; ++i) expected.push_back(std::make_unique<PrefillRendezvous::Expecting>(&rendezvous));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      rendezvous.run(w, inputs[size_t(i)], together[size_t(i)]);
      expected[size_t(i)].reset();
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(rendezvous.passes(), 1);
  EXPECT_EQ(rendezvous.chunks(), n);
  for (int i = 0; i < n; ++i) expect_same_cache(alone[size_t(i)], together[size_t(i)], c.num_layers);
}

// A thread expected that never brings a chunk holds the others up for the
// window only; chunks past one pass's rows go in the next.
TEST(PrefillRendezvous, TheWindowAndThePassSizeBoundAPass) {
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 100);
  const LmWeights w = weights_of(c);
  {
    PrefillRendezvous rendezvous(milliseconds(50), 1024);
    PrefillRendezvous::Expecting absent(&rendezvous), present(&rendezvous);
    TemporalState s = new_temporal_state(w);
    const auto t = std::chrono::steady_clock::now();
    rendezvous.run(w, at::randn({1, 4, c.dim}), s);
    EXPECT_GE(std::chrono::steady_clock::now() - t, milliseconds(50));
    EXPECT_EQ(rendezvous.passes(), 1);
    EXPECT_EQ(s.offset, 4);
  }
  {
    PrefillRendezvous rendezvous(milliseconds(2000), 10);  // one chunk of 6 a pass
    std::vector<TemporalState> states;
    for (int i = 0; i < 3; ++i) states.push_back(new_temporal_state(w));
    std::vector<std::unique_ptr<PrefillRendezvous::Expecting>> expected;
    for (int i = 0; i < 3; ++i) expected.push_back(std::make_unique<PrefillRendezvous::Expecting>(&rendezvous));
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i)
      threads.emplace_back([&, i] {
        rendezvous.run(w, at::randn({1, 6, c.dim}), states[size_t(i)]);
        expected[size_t(i)].reset();
      });
    for (auto &t : threads) t.join();
    EXPECT_EQ(rendezvous.passes(), 3);
    for (const auto &s : states) EXPECT_EQ(s.offset, 6);
  }
}

// Threads coming and going at random, each with several chunks in turn
// (some expected, some not): every chunk runs once, in its thread's order,
// and each cache is what its chunks alone give.
TEST(PrefillRendezvous, ThreadsComingAndGoingAllFinishAsAlone) {
  at::manual_seed(13);
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 100);
  const LmWeights w = weights_of(c);
  PrefillRendezvous rendezvous(milliseconds(20), 24);
  const int n = 12, chunks = 3;
  std::vector<TemporalState> alone, together;
  std::vector<std::vector<at::Tensor>> inputs(n);
  for (int i = 0; i < n; ++i) {
    alone.push_back(new_temporal_state(w));
    together.push_back(new_temporal_state(w));
    for (int k = 0; k < chunks; ++k) {
      inputs[size_t(i)].push_back(at::randn({1, 2 + (i + k) % 7, c.dim}));
      temporal_prefill(w, inputs[size_t(i)].back(), alone.back());
    }
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::microseconds(1500 * (i % 5)));
      std::optional<PrefillRendezvous::Expecting> expecting;
      if (i % 3 != 0) expecting.emplace(&rendezvous);
      for (int k = 0; k < chunks; ++k) {
        rendezvous.run(w, inputs[size_t(i)][size_t(k)], together[size_t(i)]);
        std::this_thread::sleep_for(std::chrono::microseconds(700 * ((i + k) % 3)));
      }
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(rendezvous.chunks(), n * chunks);
  EXPECT_LE(rendezvous.passes(), n * chunks);
  for (int i = 0; i < n; ++i) {
    SCOPED_TRACE("thread " + std::to_string(i));
    expect_same_cache(alone[size_t(i)], together[size_t(i)], c.num_layers);
  }
}
