// A batch's steps on one grid of frames (serving/step_grid.h): the deadline
// math, and calls whose frames come at phases spread over the frame stepped
// once a frame instead of once each.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "lm/lm_fixture.h"
#include "lm/random_weights.h"
#include "serving/lockstep_batch.h"
#include "serving/step_grid.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::serving;
using std::chrono::milliseconds;

TEST(StepGrid, OffWaitsTheGatherOnly) {
  StepGrid grid(std::chrono::nanoseconds(0), milliseconds(10));
  const auto t = std::chrono::steady_clock::now();
  EXPECT_FALSE(grid.on());
  EXPECT_EQ(grid.deadline(t), t + milliseconds(10));
  EXPECT_EQ(grid.deadline(t + milliseconds(33)), t + milliseconds(43));
}

TEST(StepGrid, LinesEveryPeriodFromTheFirstStep) {
  StepGrid grid(milliseconds(80), milliseconds(10));
  const auto t = std::chrono::steady_clock::now();
  EXPECT_EQ(grid.deadline(t), t + milliseconds(10));  // the first step sets the grid
  EXPECT_EQ(grid.deadline(t + milliseconds(30)), t + milliseconds(90));   // the next line
  EXPECT_EQ(grid.deadline(t + milliseconds(75)), t + milliseconds(90));
  EXPECT_EQ(grid.deadline(t + milliseconds(80)), t + milliseconds(90));   // on a line: the gather
  EXPECT_EQ(grid.deadline(t + milliseconds(81)), t + milliseconds(170));  // just past one: the next
  EXPECT_EQ(grid.deadline(t + milliseconds(1000)), t + milliseconds(1050));
}

TEST(StepGrid, OnGpusUnlessTurnedOff) {
  const at::Device cpu(at::kCPU), gpu(at::kCUDA, 0);
  EXPECT_FALSE(LockstepBatch::steps_on_grid(cpu));
  EXPECT_TRUE(LockstepBatch::steps_on_grid(gpu));
  {
    test::ScopedEnv on("PERSONAPLEX_STEP_GRID", "1");
    EXPECT_TRUE(LockstepBatch::steps_on_grid(cpu));
  }
  test::ScopedEnv off("PERSONAPLEX_STEP_GRID", "0");
  EXPECT_FALSE(LockstepBatch::steps_on_grid(gpu));
}

namespace {

// Three calls of a tiny model submitting a frame every `period`, at phases
// a third of a frame apart, for `frames` frames: the steps the batch ran.
int64_t steps_of_spread_calls(milliseconds period, int frames) {
  const lm::LmConfig c = test::tiny_lm_config(32, 2, 1, 200);
  auto model = std::make_shared<const lm::LmModel>(lm::random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  LockstepBatch batch(model, nullptr, 3, lm::ConversationOptions{});
  std::vector<int64_t> slots;
  for (int i = 0; i < 3; ++i) slots.push_back(batch.join(lm::Prompt{}, uint64_t(i)).slot);
  const int64_t before = batch.steps();
  const auto start = std::chrono::steady_clock::now() + milliseconds(50);
  std::vector<std::thread> calls;
  for (int i = 0; i < 3; ++i)
    calls.emplace_back([&, i] {
      for (int f = 0; f < frames; ++f) {
        std::this_thread::sleep_until(start + period * f + period * i / 3);
        batch.step(slots[size_t(i)], std::vector<int64_t>(lm::kAudioCodebooks, 0));
      }
    });
  for (auto &t : calls) t.join();
  for (int64_t s : slots) batch.leave(s);
  return batch.steps() - before;
}

}  // namespace

TEST(StepGrid, SpreadCallsStepOnceAFrameOnTheGrid) {
  const int frames = 12;
  int64_t apart, together;
  {
    test::ScopedEnv off("PERSONAPLEX_STEP_GRID", "0");
    apart = steps_of_spread_calls(milliseconds(80), frames);
  }
  {
    test::ScopedEnv on("PERSONAPLEX_STEP_GRID", "1");
    together = steps_of_spread_calls(milliseconds(80), frames);
  }
  std::printf("steps: %lld apart, %lld on the grid\n", (long long)apart, (long long)together);
  // Apart: a step per call and frame (fewer where a busy machine wakes a
  // call late, next to another); on the grid: about one a frame.
  EXPECT_GE(apart, 5 * frames / 2);
  EXPECT_LE(together, frames + 4);
}

namespace {

// Two calls joined, one of them silent (as a call still in its prompts):
// the other submits `frames` frames, each 30 ms after where the grid's line
// would be; the shortest time one of its steps took to come back.
std::chrono::microseconds shortest_wait_off_the_grid(bool paced_by_a_clock, int frames) {
  const lm::LmConfig c = test::tiny_lm_config(32, 2, 1, 200);
  auto model = std::make_shared<const lm::LmModel>(lm::random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  LockstepBatch batch(model, nullptr, 2, lm::ConversationOptions{});
  const int64_t talking = batch.join(lm::Prompt{}, 1).slot;
  const int64_t silent = batch.join(lm::Prompt{}, 2).slot;
  if (paced_by_a_clock) batch.phase(0);
  const std::vector<int64_t> codes(lm::kAudioCodebooks, 0);
  const auto start = std::chrono::steady_clock::now();
  batch.step(talking, codes);  // the grid's first line: 10 ms (the gather) after it
  auto shortest = std::chrono::microseconds::max();
  for (int f = 1; f <= frames; ++f) {
    std::this_thread::sleep_until(start + milliseconds(10 + 30) + milliseconds(80) * f);
    const auto sent = std::chrono::steady_clock::now();
    batch.step(talking, codes);
    shortest = std::min(shortest, std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - sent));
  }
  batch.leave(talking);
  batch.leave(silent);
  return shortest;
}

}  // namespace

// Elements paced by a pipeline's clock share the batch's phase: the grid,
// anchored elsewhere, would hold each of their frames up to a period.
TEST(StepGrid, CallsPacedByAClockKeepTheirOwnPhase) {
  test::ScopedEnv on("PERSONAPLEX_STEP_GRID", "1");
  const auto grid = shortest_wait_off_the_grid(false, 4);
  const auto paced = shortest_wait_off_the_grid(true, 4);
  std::printf("shortest step: %lld us on the grid, %lld us paced by a clock\n", (long long)grid.count(),
              (long long)paced.count());
  EXPECT_GE(grid, milliseconds(30));  // to the next line, 50 ms away
  EXPECT_LT(paced, milliseconds(30));  // the gather, 10 ms
}
