// Joins prefilled together (PERSONAPLEX_PREFILL_TOGETHER_MS): calls whose
// prompts run at once share passes over the weights, and each is what its
// prompts give alone.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "lm/lm_fixture.h"
#include "lm/random_weights.h"
#include "serving/batch.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::lm;
using namespace personaplex::serving;

namespace {

// Roles of their own (no voice), of different lengths.
Prompt role(int64_t who, const LmConfig &c) {
  Prompt p;
  for (int64_t i = 0; i < 5 + 3 * who; ++i) p.text_tokens.push_back((i * 7 + who * 11) % c.text_card);
  p.silence_steps = 4;
  return p;
}

std::vector<int64_t> user_codes(int64_t who, int64_t step, int64_t card) {
  std::vector<int64_t> u(kAudioCodebooks);
  for (int64_t q = 0; q < kAudioCodebooks; ++q) u[size_t(q)] = (who * 13 + step * 37 + q * 101) % card;
  return u;
}

// `n` calls whose prompts run on threads of their own at once, then
// `steps` steps of all: each step's tokens per slot.
std::map<int64_t, std::vector<std::vector<int64_t>>> joined_at_once(BatchServer &server, const LmConfig &c, int n,
                                                                     int steps) {
  std::vector<int64_t> slots;
  for (int i = 0; i < n; ++i) slots.push_back(server.reserve(uint64_t(i + 1)));
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] { server.prefill(slots[size_t(i)], role(i, c), {}, false); });
  for (auto &t : threads) t.join();
  for (int64_t s : slots) server.activate(s);
  std::map<int64_t, std::vector<std::vector<int64_t>>> tokens;
  for (int t = 0; t < steps; ++t) {
    std::map<int64_t, std::vector<int64_t>> user;
    for (int i = 0; i < n; ++i) user[slots[size_t(i)]] = user_codes(i, t, c.card);
    for (auto &[slot, r] : server.step(user))
      if (r) tokens[slot].push_back(r->tokens);
  }
  return tokens;
}

}  // namespace

TEST(PrefillTogether, OffUnlessAWindowIsGiven) {
  EXPECT_EQ(BatchServer::prefill_together().count(), 0);
  for (const char *bad : {"0", "-3", "x", "2000"}) {
    test::ScopedEnv env("PERSONAPLEX_PREFILL_TOGETHER_MS", bad);
    EXPECT_EQ(BatchServer::prefill_together().count(), 0) << bad;
  }
  test::ScopedEnv on("PERSONAPLEX_PREFILL_TOGETHER_MS", "2.5");
  EXPECT_EQ(BatchServer::prefill_together().count(), 2500);
}

TEST(PrefillTogether, JoinsAtOnceShareThePassesAndStepAsAlone) {
  const LmConfig c = test::tiny_lm_config(48, 4, 2, 100);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 9, 0.2));
  const int n = 4, steps = 8;
  BatchServer alone(model, n, test::greedy());
  const auto expected = joined_at_once(alone, c, n, steps);
  EXPECT_EQ(alone.rendezvous(), nullptr);
  test::ScopedEnv on("PERSONAPLEX_PREFILL_TOGETHER_MS", "500");
  BatchServer together(model, n, test::greedy());
  ASSERT_NE(together.rendezvous(), nullptr);
  std::map<int64_t, std::vector<std::vector<int64_t>>> got;
  {
    // Expected too, this thread never comes: the first chunk waits the whole
    // window, which lets every join's come (threads start when they will).
    PrefillRendezvous::Expecting late(together.rendezvous());
    got = joined_at_once(together, c, n, steps);
  }
  EXPECT_EQ(together.rendezvous()->chunks(), n);  // one role chunk each
  EXPECT_LT(together.rendezvous()->passes(), n);  // some shared a pass
  EXPECT_EQ(got, expected);
}
