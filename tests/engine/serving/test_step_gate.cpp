// The gate between a batch's steps and the joins' prompts
// (serving/step_gate.h), and the prompts' yield points it is reached from.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/yield_point.h"
#include "serving/step_gate.h"

using namespace personaplex;
using namespace personaplex::serving;

namespace {

// Long enough for a thread that should wait to have gone past the gate if
// it did not.
void let_it_run() { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }

// A join's prompts at a yield point, on a thread of their own.
struct Prompts {
  explicit Prompts(StepGate &gate)
      : thread([this, &gate] {
          gate.give_way();
          passed = true;
        }) {}
  std::atomic<bool> passed{false};
  std::thread thread;
};

}  // namespace

TEST(StepGate, OpenWhenNoStepRuns) {
  StepGate gate;
  gate.give_way();
  gate.begin_step();
  gate.end_step();
  gate.give_way();
  EXPECT_EQ(gate.steps(), 1);
}

TEST(StepGate, WaitsForTheStepUnderWay) {
  StepGate gate;
  gate.begin_step();
  Prompts prompts(gate);
  let_it_run();
  EXPECT_FALSE(prompts.passed.load());
  gate.end_step();
  prompts.thread.join();
  EXPECT_TRUE(prompts.passed.load());
}

// Steps back to back: the prompts go on after the step they met ended, even
// though the next one has begun by the time they look.
TEST(StepGate, BackToBackStepsDoNotStarveThePrompts) {
  StepGate gate;
  gate.begin_step();
  Prompts prompts(gate);
  let_it_run();
  // Ended and begun again before the waiting thread can look.
  gate.end_step();
  gate.begin_step();
  prompts.thread.join();
  EXPECT_TRUE(prompts.passed.load());
  gate.end_step();
}

// An allowance beside each step: prompts go on while the step under way is
// younger than it, then wait for that step's end; the next step brings a
// fresh allowance.
TEST(StepGate, PromptsRunBesideAStepForTheirAllowance) {
  StepGate gate;
  const auto allowance = std::chrono::milliseconds(200);
  gate.begin_step();
  gate.give_way(allowance);  // the step just began: at once
  std::atomic<bool> passed{false};
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  std::thread late([&] {
    gate.give_way(allowance);  // past it: waits for the end
    passed = true;
  });
  let_it_run();
  EXPECT_FALSE(passed.load());
  gate.end_step();
  late.join();
  EXPECT_TRUE(passed.load());
  gate.begin_step();
  gate.give_way(allowance);  // a new step: at once again
  gate.end_step();
}

TEST(StepGate, StopReleasesEveryWait) {
  StepGate gate;
  gate.begin_step();
  Prompts prompts(gate);
  let_it_run();
  gate.stop();
  prompts.thread.join();
  EXPECT_TRUE(prompts.passed.load());
  gate.give_way();  // stopped with a step marked under way: returns
}

TEST(YieldPoint, HookOfTheThreadForItsLifetime) {
  int calls = 0;
  yield_point();  // none: nothing happens
  {
    YieldTo outer([&] { calls += 1; });
    yield_point();
    {
      YieldTo inner([&] { calls += 10; });
      yield_point();
      std::thread other([] { yield_point(); });  // another thread has its own (none)
      other.join();
    }
    yield_point();
  }
  yield_point();
  EXPECT_EQ(calls, 12);
}
