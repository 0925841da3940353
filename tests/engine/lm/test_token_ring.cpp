#include <gtest/gtest.h>

#include "core/error.h"
#include "lm/token_ring.h"

using namespace personaplex::lm;

namespace {

StepTokens given(int64_t text, int64_t agent, int64_t user) {
  StepTokens s;
  s.text = text;
  s.agent.assign(8, agent);
  s.user.assign(8, user);
  return s;
}

}  // namespace

TEST(TokenRing, FirstStepOnlyPrimes) {
  LmConfig c;
  TokenRing r(c);
  EXPECT_FALSE(r.prepare(given(5, 100, 200)).has_value());
  EXPECT_EQ(r.offset(), 1);
  // Column 0: initial tokens everywhere; the delayed rows' tokens wait in column 1.
  EXPECT_EQ(r.get(0, 0), c.text_card);
  for (int64_t row = 1; row < 17; ++row) EXPECT_EQ(r.get(row, 0), c.card);
  EXPECT_EQ(r.get(2, 1), 100);
  EXPECT_EQ(r.get(10, 1), 200);
}

TEST(TokenRing, ReadsThePreviousColumnAndReturnsUndelayedOutputs) {
  LmConfig c;
  TokenRing r(c);
  r.prepare(given(1, 10, 20));
  // Step 1: delay-1 rows still get the initial token (offset <= delay).
  auto cols = r.prepare(given(2, 11, 21));
  ASSERT_TRUE(cols.has_value());
  EXPECT_EQ(cols->input, 0);
  EXPECT_EQ(cols->target, 1);
  EXPECT_EQ(r.get(0, 1), 2);        // text, delay 0
  EXPECT_EQ(r.get(1, 1), 11);       // agent cb0, delay 0
  EXPECT_EQ(r.get(2, 1), c.card);   // agent cb1, delay 1: initial
  EXPECT_EQ(r.get(2, 2), 11);       // ... and this step's cb1 waits
  EXPECT_FALSE(r.finish(*cols, 99, std::vector<int64_t>(16, 7)).has_value());  // offset 1 <= max delay
  // Given tokens win over sampled ones.
  EXPECT_EQ(r.get(0, 1), 2);
  // Step 2: now outputs flow.
  cols = r.prepare(StepTokens{std::nullopt, {}, std::vector<int64_t>(8, 22)});
  ASSERT_TRUE(cols.has_value());
  EXPECT_FALSE(r.given(0, cols->target));
  EXPECT_TRUE(r.given(2, cols->target));  // cb1 of step 1
  std::vector<int64_t> audio(16, 5);
  auto out = r.finish(*cols, 42, audio);
  ASSERT_TRUE(out.has_value());
  ASSERT_EQ(out->size(), 17u);
  EXPECT_EQ((*out)[0], 2);    // text of step 1
  EXPECT_EQ((*out)[1], 11);   // agent cb0 of step 1
  EXPECT_EQ((*out)[2], 11);   // agent cb1 given at step 1, read at column 2
  EXPECT_EQ((*out)[9], 21);   // user cb0 of step 1 (delay 0: column 1)
  EXPECT_EQ((*out)[10], 21);  // user cb1 of step 1 (delay 1: column 2)
  EXPECT_EQ(r.get(9, 2), 22); // user cb0 of step 2 waits in column 2
  EXPECT_EQ(r.get(0, 2), 42); // the sampled text filled the free cell
}

TEST(TokenRing, TensorRoundTripAndShapeCheck) {
  LmConfig c;
  TokenRing r(c);
  r.prepare(given(1, 10, 20));
  at::Tensor t = r.to_tensor();
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1, 17, 4}));
  TokenRing r2(c);
  r2.load(t);
  EXPECT_TRUE(at::equal(r2.to_tensor(), t));
  EXPECT_THROW(r2.load(at::zeros({1, 17, 3}, at::kLong)), personaplex::Error);
}
