// The roles a batch's warm-up runs so that joins find their prefill
// kernels loaded (serving/prompt_lengths.h).
#include <gtest/gtest.h>

#include "serving/lockstep_batch.h"
#include "serving/prompt_lengths.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::serving;

namespace {

lm::Prompt voiced_prompt(std::vector<int64_t> text) {
  lm::Prompt p;
  p.voice.codes = at::zeros({lm::kAudioCodebooks, 20}, at::kLong);
  p.text_tokens = std::move(text);
  return p;
}

int64_t role_steps(const lm::Prompt &p) { return 2 * p.silence_steps + int64_t(p.text_tokens.size()); }

}  // namespace

TEST(PromptLengths, EveryStrideUpToTheMostWarmed) {
  const lm::LmConfig c;
  const lm::Prompt session = voiced_prompt({10, 11, 12});
  const auto prompts = role_length_prompts(session, c);
  ASSERT_FALSE(prompts.empty());
  // The first length that holds the silences, then every stride after it.
  const int64_t first = (2 * session.silence_steps + kWarmedLengthStride - 1) / kWarmedLengthStride;
  EXPECT_EQ(role_steps(prompts.front()), first * kWarmedLengthStride);
  EXPECT_EQ(role_steps(prompts.back()), kWarmedLengthMax);
  for (size_t i = 1; i < prompts.size(); ++i)
    EXPECT_EQ(role_steps(prompts[i]), role_steps(prompts[i - 1]) + kWarmedLengthStride);
  for (const auto &p : prompts) {
    EXPECT_TRUE(p.voice.codes.is_same(session.voice.codes));  // the session's voice, as joins bring it
    EXPECT_EQ(p.silence_steps, session.silence_steps);
    for (size_t i = 0; i < p.text_tokens.size(); ++i) EXPECT_EQ(p.text_tokens[i], session.text_tokens[i % 3]);
    EXPECT_TRUE(lm::plan_prompts(c, p).warning.empty());
  }
}

TEST(PromptLengths, NoneCutByTheBudgetOfASmallContext) {
  lm::LmConfig c;
  c.context = 120;  // a budget of 90 prompt steps, 19 of them the voice's
  const auto prompts = role_length_prompts(voiced_prompt({}), c);
  ASSERT_FALSE(prompts.empty());
  for (const auto &p : prompts) {
    EXPECT_TRUE(lm::plan_prompts(c, p).warning.empty()) << role_steps(p);
    for (int64_t t : p.text_tokens) EXPECT_EQ(t, c.text_pad_id());  // no role text: padding
  }
  lm::Prompt next = prompts.back();
  next.text_tokens.resize(next.text_tokens.size() + size_t(kWarmedLengthStride), c.text_pad_id());
  EXPECT_FALSE(lm::plan_prompts(c, next).warning.empty());  // the next length would not fit
}

TEST(PromptLengths, WarmedOnGpusUnlessTurnedOff) {
  const at::Device cpu(at::kCPU), gpu(at::kCUDA, 0);
  EXPECT_FALSE(LockstepBatch::warms_prompt_lengths(cpu));
  EXPECT_TRUE(LockstepBatch::warms_prompt_lengths(gpu));
  {
    test::ScopedEnv on("PERSONAPLEX_WARM_PROMPT_LENGTHS", "1");
    EXPECT_FALSE(LockstepBatch::warms_prompt_lengths(cpu));  // a CPU loads no kernels
  }
  test::ScopedEnv off("PERSONAPLEX_WARM_PROMPT_LENGTHS", "0");
  EXPECT_FALSE(LockstepBatch::warms_prompt_lengths(gpu));
}
