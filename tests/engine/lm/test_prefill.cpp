// Prompt prefill (one causal temporal chunk) against stepping: the same
// ring, KV cache, generator and conversation afterwards.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "core/yield_point.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

std::shared_ptr<const LmModel> random_model(const LmConfig &c, uint64_t seed) {
  // Larger weights than the default so that argmaxes are far from ties.
  return std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, seed, 0.2));
}

std::vector<int64_t> user_codes(int64_t step, int64_t card) {
  std::vector<int64_t> u(kAudioCodebooks);
  for (int64_t q = 0; q < kAudioCodebooks; ++q) u[size_t(q)] = (step * 37 + q * 101) % card;
  return u;
}

// Runs the prompt both ways, compares the state, then `steps` live steps.
void expect_same(const std::shared_ptr<const LmModel> &model, Prompt prompt, ConversationOptions opts,
                 int64_t steps = 12) {
  Conversation stepped(model, opts), prefilled(model, opts);
  prompt.prefill = false;
  run_prompts(stepped, prompt);
  prompt.prefill = true;
  run_prompts(prefilled, prompt);
  ASSERT_EQ(stepped.steps(), prefilled.steps());
  ASSERT_EQ(stepped.model_steps(), prefilled.model_steps());
  EXPECT_TRUE(at::equal(stepped.ring().to_tensor(), prefilled.ring().to_tensor()));
  const auto &a = stepped.temporal_state().kv, &b = prefilled.temporal_state().kv;
  EXPECT_EQ(a.end(), b.end());
  EXPECT_EQ(a.pinned(), b.pinned());
  EXPECT_TRUE(at::equal(a.written(), b.written()));
  for (size_t l = 0; l < size_t(model->config().num_layers); ++l) {
    EXPECT_TRUE(at::allclose(a.layer(l).keys, b.layer(l).keys, 1e-4, 1e-5)) << "layer " << l;
    EXPECT_TRUE(at::allclose(a.layer(l).values, b.layer(l).values, 1e-4, 1e-5)) << "layer " << l;
  }
  for (int64_t s = 0; s < steps; ++s) {
    auto x = stepped.step_user(user_codes(s, model->config().card));
    auto y = prefilled.step_user(user_codes(s, model->config().card));
    ASSERT_EQ(x.has_value(), y.has_value());
    if (x) ASSERT_EQ(x->tokens, y->tokens) << "step " << s;
  }
}

Prompt codes_prompt(int64_t frames, int64_t text, int64_t text_card, int64_t card) {
  Prompt p;
  if (frames > 0) p.voice.codes = at::randint(0, card, {kAudioCodebooks, frames}, at::kLong);
  for (int64_t i = 0; i < text; ++i) p.text_tokens.push_back((i * 7 + 5) % text_card);
  return p;
}

ConversationOptions sampled(uint64_t seed) {
  ConversationOptions o;
  o.seed = seed;
  return o;
}

}  // namespace

TEST(Prefill, MatchesSteppingOnRandomConfigs) {
  at::manual_seed(3);
  const LmConfig configs[] = {test::tiny_lm_config(32, 2, 1, 100), test::tiny_lm_config(48, 4, 2, 64), test::tiny_lm_config(64, 4, 3, 200)};
  uint64_t seed = 1;
  for (const auto &c : configs) {
    auto model = random_model(c, seed++);
    SCOPED_TRACE("dim " + std::to_string(c.dim) + " context " + std::to_string(c.context));
    expect_same(model, codes_prompt(7, 9, c.text_card, c.card), test::greedy());
    expect_same(model, codes_prompt(0, 3, c.text_card, c.card), test::greedy());
    expect_same(model, codes_prompt(1, 0, c.text_card, c.card), test::greedy());
    expect_same(model, Prompt{}, test::greedy());
    // Sampling: the generator ends where stepping leaves it.
    expect_same(model, codes_prompt(5, 4, c.text_card, c.card), sampled(seed));
    ConversationOptions full = test::greedy();
    full.full_depformer = true;
    full.keep_logits = true;
    expect_same(model, codes_prompt(4, 4, c.text_card, c.card), full);
  }
}

TEST(Prefill, TruncatedPromptAndUnpinnedCache) {
  at::manual_seed(4);
  // max_prompt_steps(20) = 15: the text is cut; the live steps then roll
  // the cache past the pinned prompt.
  LmConfig c = test::tiny_lm_config(32, 2, 2, 20);
  auto model = random_model(c, 11);
  expect_same(model, codes_prompt(6, 30, c.text_card, c.card), test::greedy(), 40);
  expect_same(model, codes_prompt(2, 1, c.text_card, c.card), sampled(5), 40);
  ConversationOptions plain = test::greedy();
  plain.pin_prompt = false;
  expect_same(model, codes_prompt(3, 2, c.text_card, c.card), plain, 40);
}

TEST(Prefill, StoredVoiceAndSavedVoiceMatchStepping) {
  at::manual_seed(5);
  LmConfig c = test::tiny_lm_config(48, 2, 2, 100);
  auto model = random_model(c, 21);
  // Save a voice from codes both ways: same embeddings and ring.
  Prompt p = codes_prompt(6, 2, c.text_card, c.card);
  Conversation a(model, test::greedy()), b(model, test::greedy());
  p.prefill = false;
  VoiceEmbeddings va = run_prompts(a, p, {}, true);
  p.prefill = true;
  VoiceEmbeddings vb = run_prompts(b, p, {}, true);
  EXPECT_TRUE(at::equal(va.embeddings, vb.embeddings));
  EXPECT_TRUE(at::equal(va.cache, vb.cache));
  Prompt stored;
  stored.voice.stored = va;
  stored.text_tokens = {1, 2, 3};
  expect_same(model, stored, test::greedy());
  expect_same(model, stored, sampled(8));
}

TEST(Prefill, MixedForcedStepsFallBackToStepping) {
  at::manual_seed(6);
  LmConfig c = test::tiny_lm_config(32, 2, 2, 100);
  auto model = random_model(c, 31);
  // User-only steps predict text and agent audio: they cannot be batched.
  std::vector<ForcedStep> steps(10);
  for (size_t i = 0; i < steps.size(); ++i) {
    steps[i].tokens.user = user_codes(int64_t(i), c.card);
    if (i % 3 != 1) {
      steps[i].tokens.text = 3;
      steps[i].tokens.agent = kSilenceTokens;
    }
  }
  for (auto opts : {test::greedy(), sampled(2)}) {
    Conversation stepped(model, opts), prefilled(model, opts);
    for (const auto &s : steps) stepped.step(s.tokens);
    prefilled.prefill(steps);
    EXPECT_TRUE(at::equal(stepped.ring().to_tensor(), prefilled.ring().to_tensor()));
    for (int64_t s = 0; s < 8; ++s)
      ASSERT_EQ(stepped.step_user(user_codes(s, c.card))->tokens, prefilled.step_user(user_codes(s, c.card))->tokens);
  }
}

TEST(Prefill, FixtureConversationIsTheSame) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  auto model = test::tiny_lm();
  auto prompt = test::fixture_prompt(io, model->config());
  Conversation conv(model, test::greedy());
  prompt.prefill = true;
  EXPECT_TRUE(at::equal(test::run_fixture_conversation(conv, io, prompt), io.out_tokens));
  // Every prompt step in a chunk, one for the voice and one for the role:
  // a step run on its own would be a pass over the weights of its own.
  EXPECT_GE(conv.prefill_chunks(), 1);
  EXPECT_LE(conv.prefill_chunks(), 2);
  EXPECT_GT(conv.prefilled_steps(), 0);
}

// A prefilled chunk gives way to other threads' work between its layers
// (a batch's steps, see serving/step_gate.h), a stepped prompt between its
// steps: every layer of every chunk and every step is a yield point.
TEST(Prefill, YieldsBetweenLayersAndSteps) {
  at::manual_seed(5);
  const LmConfig c = test::tiny_lm_config(32, 2, 3, 100);
  auto model = random_model(c, 4);
  Prompt prompt = codes_prompt(5, 4, c.text_card, c.card);
  int64_t yields = 0;
  YieldTo count([&] { ++yields; });
  Conversation prefilled(model, test::greedy());
  prompt.prefill = true;
  run_prompts(prefilled, prompt);
  // Two chunks (the voice, then the role), each through every layer; the
  // model steps run one by one (a chunk's last predictions not yet given)
  // one more each.
  EXPECT_EQ(prefilled.prefill_chunks(), 2);
  EXPECT_EQ(yields, prefilled.prefill_chunks() * c.num_layers +
                        (prefilled.model_steps() - prefilled.prefilled_steps()));
  yields = 0;
  Conversation stepped(model, test::greedy());
  prompt.prefill = false;
  run_prompts(stepped, prompt);
  // One a step given, the voice's first too (it only primes the ring).
  EXPECT_EQ(yields, stepped.model_steps() + 1);
}
