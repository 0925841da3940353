#include <gtest/gtest.h>

#include "core/error.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

TEST(Prompt, PhasesTakeOneStepPerFrameAndToken) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  auto model = test::tiny_lm();
  Prompt p;
  p.voice.codes = at::randint(0, 2048, {8, 5}, at::kLong);
  p.text_tokens = {10, 11, 12};
  Conversation conv(model, test::greedy());
  run_prompts(conv, p);
  EXPECT_EQ(conv.steps(), 5 + 6 + 3 + 6);
  EXPECT_EQ(conv.model_steps(), conv.steps() - 1);
}

TEST(Prompt, EmptyPromptHasNoTextPhase) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Conversation conv(test::tiny_lm(), test::greedy());
  run_prompts(conv, Prompt{});
  EXPECT_EQ(conv.steps(), 12);
  EXPECT_TRUE(conv.step_user(std::vector<int64_t>(8, 1)).has_value());
}

TEST(Prompt, LongPromptIsTruncatedWithAWarning) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  auto model = test::tiny_lm();
  Prompt p;
  p.text_tokens.assign(size_t(model->config().context + 100), 20);
  std::vector<std::string> warnings;
  Conversation conv(model, test::greedy());
  run_prompts(conv, p, [&](const std::string &w) { warnings.push_back(w); });
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("truncated"), std::string::npos) << warnings[0];
  EXPECT_LE(conv.model_steps(), max_prompt_steps(model->config()));
  EXPECT_LT(max_prompt_steps(model->config()), model->config().context);
  // The prompt is pinned and the conversation goes on.
  EXPECT_EQ(conv.temporal_state().kv.pinned(), conv.model_steps());
  EXPECT_TRUE(conv.step_user(std::vector<int64_t>(8, 1)).has_value());
}

TEST(Prompt, BadVoiceCodesAreAnError) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Conversation conv(test::tiny_lm(), test::greedy());
  Prompt p;
  p.voice.codes = at::zeros({7, 3}, at::kLong);
  EXPECT_THROW(run_prompts(conv, p), Error);
  p.voice.codes = at::full({8, 3}, 4096, at::kLong);
  EXPECT_THROW(run_prompts(conv, p), Error);
}
