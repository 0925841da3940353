// Conversations longer than the context: memory stays flat and, with the
// prompt pinned, everything is identical to the reference's window until it
// is exceeded.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

ConversationOptions options(bool pin) {
  ConversationOptions o;
  o.seed = 9;
  o.pin_prompt = pin;
  o.keep_logits = true;
  return o;
}

}  // namespace

TEST(LongConversation, PinningIsExactWithinTheContextAndMemoryStaysFlat) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  auto model = test::tiny_lm();
  const int64_t context = model->config().context;
  auto prompt = test::fixture_prompt(io, model->config());
  Conversation pinned(model, options(true)), plain(model, options(false));
  run_prompts(pinned, prompt);
  run_prompts(plain, prompt);
  const int64_t prompt_steps = pinned.model_steps();
  EXPECT_EQ(pinned.temporal_state().kv.pinned(), prompt_steps);
  EXPECT_EQ(plain.temporal_state().kv.pinned(), 0);

  const void *keys = pinned.temporal_state().kv.layer(0).keys.data_ptr();
  const auto shape = pinned.temporal_state().kv.layer(0).keys.sizes().vec();

  // The first `context` conversation steps (the reference sees all of them).
  int64_t s = pinned.steps();
  for (; s < context; ++s) {
    auto a = pinned.step_user(test::user_frame(io, s));
    auto b = plain.step_user(test::user_frame(io, s));
    ASSERT_EQ(a->tokens, b->tokens) << "step " << s;
  }
  EXPECT_TRUE(at::equal(pinned.last_text_logits(), plain.last_text_logits()));

  // Past the window the reference forgets the prompt; the pinned one does not.
  bool logits_differ = false;
  for (; s < context + 200; ++s) {
    pinned.step_user(test::user_frame(io, s));
    plain.step_user(test::user_frame(io, s));
    logits_differ |= !at::equal(pinned.last_text_logits(), plain.last_text_logits());
  }
  EXPECT_TRUE(logits_differ);

  const long rss_before = rss_kb();
  for (; s < 10000; ++s) ASSERT_TRUE(pinned.step_user(test::user_frame(io, s)).has_value());
  EXPECT_EQ(pinned.steps(), 10000);
  const auto &kv = pinned.temporal_state().kv;
  for (size_t i = 0; i < size_t(model->config().num_layers); ++i) EXPECT_EQ(kv.layer(i).keys.sizes().vec(), shape);
  EXPECT_EQ(kv.pinned(), prompt_steps);
  EXPECT_EQ(pinned.temporal_state().kv.layer(0).keys.data_ptr(), keys);
  EXPECT_LT(rss_kb() - rss_before, 20 * 1024) << "resident memory grew";
}
