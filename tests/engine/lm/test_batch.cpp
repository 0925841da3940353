// Lock-step batched serving: every conversation in a batch gives exactly
// what it gives alone, whenever it joins, and a re-joined slot starts fresh.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "core/error.h"
#include "lm/batch.h"
#include "lm/random_weights.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

LmConfig tiny_config(int64_t dim, int64_t heads, int64_t layers, int64_t context) {
  LmConfig c;
  c.dim = dim;
  c.num_heads = heads;
  c.num_layers = layers;
  c.context = context;
  c.text_card = 40;
  c.depformer_dim = 16;
  c.depformer_num_heads = 2;
  c.depformer_num_layers = 1;
  c.depformer_dim_feedforward = 44;
  c.validate("test");
  return c;
}

std::vector<int64_t> user_codes(uint64_t who, int64_t step, int64_t card) {
  std::vector<int64_t> u(kAudioCodebooks);
  for (int64_t q = 0; q < kAudioCodebooks; ++q) u[size_t(q)] = (int64_t(who) * 13 + step * 37 + q * 101) % card;
  return u;
}

struct Plan {
  Prompt prompt;
  uint64_t seed;
  int64_t join_at, steps;
};

Prompt make_prompt(int64_t frames, int64_t text, const LmConfig &c) {
  Prompt p;
  if (frames > 0) p.voice.codes = at::randint(0, c.card, {kAudioCodebooks, frames}, at::kLong);
  for (int64_t i = 0; i < text; ++i) p.text_tokens.push_back((i * 7 + frames) % c.text_card);
  return p;
}

std::vector<std::vector<int64_t>> alone(const std::shared_ptr<const LmModel> &model, const Plan &p,
                                        ConversationOptions opts) {
  opts.seed = p.seed;
  Conversation conv(model, opts);
  run_prompts(conv, p.prompt);
  std::vector<std::vector<int64_t>> out;
  for (int64_t s = 0; s < p.steps; ++s) {
    auto r = conv.step_user(user_codes(p.seed, s, model->config().card));
    out.push_back(r ? r->tokens : std::vector<int64_t>{});
  }
  return out;
}

// Runs the plans through one server; each joins at its step and leaves
// after its steps.
std::vector<std::vector<std::vector<int64_t>>> together(const std::shared_ptr<const LmModel> &model,
                                                        const std::vector<Plan> &plans,
                                                        const ConversationOptions &opts, int64_t slots) {
  BatchServer server(model, slots, opts);
  std::vector<std::vector<std::vector<int64_t>>> out(plans.size());
  std::vector<int64_t> slot(plans.size(), -1), done(plans.size(), 0);
  for (int64_t t = 0;; ++t) {
    bool running = false;
    std::map<int64_t, std::vector<int64_t>> in;
    std::map<int64_t, size_t> who;
    for (size_t i = 0; i < plans.size(); ++i) {
      if (t == plans[i].join_at) slot[i] = server.join(plans[i].prompt, plans[i].seed);
      if (slot[i] < 0 || done[i] >= plans[i].steps) continue;
      in[slot[i]] = user_codes(plans[i].seed, done[i], model->config().card);
      who[slot[i]] = i;
      running = true;
    }
    if (!running && t > 100) break;
    for (auto &[s, r] : server.step(in)) {
      size_t i = who[s];
      out[i].push_back(r ? r->tokens : std::vector<int64_t>{});
      if (++done[i] == plans[i].steps) server.leave(s);
    }
    if (t > 1000) break;
  }
  return out;
}

void expect_batch_equals_alone(const std::shared_ptr<const LmModel> &model, const std::vector<Plan> &plans,
                               const ConversationOptions &opts, int64_t slots) {
  auto batched = together(model, plans, opts, slots);
  for (size_t i = 0; i < plans.size(); ++i) {
    auto ref = alone(model, plans[i], opts);
    ASSERT_EQ(batched[i].size(), ref.size()) << "conversation " << i;
    for (size_t s = 0; s < ref.size(); ++s) ASSERT_EQ(batched[i][s], ref[s]) << "conversation " << i << " step " << s;
  }
}

ConversationOptions sampled() { return ConversationOptions{}; }

}  // namespace

TEST(Batch, RandomConfigsGreedyAndSampled) {
  at::manual_seed(7);
  for (const auto &c : {tiny_config(32, 2, 1, 40), tiny_config(64, 4, 2, 100)}) {
    auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
    std::vector<Plan> plans = {{make_prompt(4, 3, c), 1, 0, 30},
                               {make_prompt(0, 5, c), 2, 3, 20},
                               {make_prompt(6, 0, c), 3, 3, 25},
                               {make_prompt(2, 2, c), 4, 9, 40}};
    for (int64_t n = 1; n <= 4; ++n) {
      std::vector<Plan> some(plans.begin(), plans.begin() + n);
      SCOPED_TRACE("dim " + std::to_string(c.dim) + ", " + std::to_string(n) + " conversations");
      expect_batch_equals_alone(model, some, test::greedy(), n);
      expect_batch_equals_alone(model, some, sampled(), n);
    }
    // Slots reused: four conversations through two slots, past the context.
    std::vector<Plan> reuse = {{make_prompt(3, 2, c), 5, 0, 10},
                               {make_prompt(1, 1, c), 6, 0, 60},
                               {make_prompt(2, 4, c), 7, 12, 15},
                               {make_prompt(5, 1, c), 8, 30, 12}};
    expect_batch_equals_alone(model, reuse, sampled(), 2);
    expect_batch_equals_alone(model, reuse, test::greedy(), 2);
  }
}

TEST(Batch, FixtureModelMatchesItsConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  auto model = test::tiny_lm();
  auto prompt = test::fixture_prompt(io, model->config());
  BatchServer server(model, 3, test::greedy());
  // Two others at different offsets around the fixture's conversation.
  int64_t other = server.join(make_prompt(3, 2, model->config()), 9);
  for (int64_t s = 0; s < 5; ++s) server.step({{other, user_codes(9, s, model->config().card)}});
  int64_t slot = server.join(prompt, 0);
  int64_t late = -1;
  std::vector<at::Tensor> cols;
  for (int64_t s = 0; s < io.user_codes.size(2); ++s) {
    if (s == 4) late = server.join(Prompt{}, 11);
    std::map<int64_t, std::vector<int64_t>> in = {{slot, test::user_frame(io, s)},
                                                  {other, user_codes(9, s + 5, model->config().card)}};
    if (late >= 0) in[late] = user_codes(11, s, model->config().card);
    auto out = server.step(in);
    ASSERT_TRUE(out.at(slot).has_value());
    cols.push_back(at::tensor(out.at(slot)->tokens, at::kLong));
  }
  EXPECT_TRUE(at::equal(at::stack(cols, 1).unsqueeze(0), io.out_tokens));
}

TEST(Batch, SlotsAreCheckedAndFreed) {
  at::manual_seed(8);
  LmConfig c = tiny_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 4, 0.2));
  BatchServer server(model, 2, test::greedy());
  int64_t a = server.join(Prompt{}, 1), b = server.join(Prompt{}, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(server.active(), 2);
  EXPECT_THROW(server.join(Prompt{}, 3), Error);
  EXPECT_THROW(server.step({{5, user_codes(0, 0, c.card)}}), Error);
  EXPECT_THROW(server.step({{a, std::vector<int64_t>(3, 1)}}), Error);
  server.step({{a, user_codes(0, 0, c.card)}});
  server.leave(a);
  EXPECT_THROW(server.leave(a), Error);
  EXPECT_EQ(server.join(Prompt{}, 4), a);
  EXPECT_EQ(server.conversation(a).steps(), 12);  // a fresh conversation: its prompt only
}
