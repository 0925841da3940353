#include <gtest/gtest.h>

#include "core/error.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

ConversationOptions sampling(uint64_t seed) {
  ConversationOptions o;
  o.seed = seed;
  return o;
}

at::Tensor run_sampled(Conversation &conv) {
  test::LmIo io = test::lm_io();
  return test::run_fixture_conversation(conv, io, test::fixture_prompt(io, conv.model().config()));
}

std::string error_of(const std::function<void()> &f) {
  try {
    f();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Conversation, ReproducesTheFixture) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  Conversation conv(test::tiny_lm(), test::greedy());
  at::Tensor out = test::run_fixture_conversation(conv, io, test::fixture_prompt(io, test::tiny_lm()->config()));
  EXPECT_TRUE(at::equal(out, io.out_tokens));
}

TEST(Conversation, BadInputIsAnError) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Conversation conv(test::tiny_lm(), test::greedy());
  std::vector<int64_t> ok(8, 5);
  EXPECT_NE(error_of([&] { conv.step_user({1, 2, 3}); }).find("3 codes given, 8 expected"), std::string::npos);
  auto high = ok;
  high[3] = 2048;
  EXPECT_NE(error_of([&] { conv.step_user(high); }).find("code 2048 of codebook 3"), std::string::npos);
  auto negative = ok;
  negative[0] = -1;
  EXPECT_NE(error_of([&] { conv.step_user(negative); }).find("outside [0, 2048)"), std::string::npos);
  EXPECT_NE(error_of([&] { conv.step_user({}); }).find("no codes"), std::string::npos);
  StepTokens t;
  t.text = 90;
  EXPECT_NE(error_of([&] { conv.step(t); }).find("text token 90"), std::string::npos);
  t.text = 3;
  t.agent = {1, 2};
  EXPECT_NE(error_of([&] { conv.step(t); }).find("agent audio"), std::string::npos);
  EXPECT_NE(error_of([&] { conv.step_embedding(at::zeros({63})); }).find("63 values"), std::string::npos);
  // Nothing was recorded by the refused steps.
  EXPECT_EQ(conv.steps(), 0);
  EXPECT_NO_THROW(conv.step_user(ok));
}

TEST(Conversation, SameSeedSameConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Conversation a(test::tiny_lm(), sampling(11)), b(test::tiny_lm(), sampling(11)), c(test::tiny_lm(), sampling(12));
  at::Tensor ta = run_sampled(a), tb = run_sampled(b), tc = run_sampled(c);
  EXPECT_TRUE(at::equal(ta, tb));
  EXPECT_FALSE(at::equal(ta, tc));
  // Sampling, not greedy: differs from the greedy fixture.
  EXPECT_FALSE(at::equal(ta, test::lm_io().out_tokens));
}

TEST(Conversation, ResetStartsOver) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Conversation conv(test::tiny_lm(), sampling(5));
  at::Tensor first = run_sampled(conv);
  conv.reset();
  EXPECT_EQ(conv.steps(), 0);
  EXPECT_EQ(conv.model_steps(), 0);
  EXPECT_TRUE(at::equal(run_sampled(conv), first));
}

TEST(Conversation, ConversationsShareOneModel) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  auto prompt = test::fixture_prompt(io, test::tiny_lm()->config());
  Conversation a(test::tiny_lm(), sampling(1)), b(test::tiny_lm(), sampling(2));
  run_prompts(a, prompt);
  run_prompts(b, prompt);
  std::vector<int64_t> ta, tb;
  for (int64_t s = 0; s < 24; ++s) {  // interleaved
    ta.push_back(a.step_user(test::user_frame(io, s))->text());
    tb.push_back(b.step_user(test::user_frame(io, s))->text());
  }
  Conversation a2(test::tiny_lm(), sampling(1));
  run_prompts(a2, prompt);
  for (int64_t s = 0; s < 24; ++s) EXPECT_EQ(a2.step_user(test::user_frame(io, s))->text(), ta[size_t(s)]);
}
