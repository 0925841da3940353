// Where a batch's steps and the joins' prompts meet: the batch thread marks
// each step's start and end; a join's prompts, between two layers, give way
// to the step under way once it has run beside them for an allowance. They
// wait for the end of that step only, not for a moment with no step: a
// batch that steps back to back (many calls whose frames come at different
// times) still lets them on, for the allowance a step (with none, a layer a
// step: a join's two prompt chunks of 32 layers then took two seconds beside
// 64 calls on an H100).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace personaplex::serving {

class StepGate {
 public:
  void begin_step();
  void end_step();
  // Returns at once when no step is under way or the one under way began
  // less than `beside` ago, else when it has ended (or the gate stopped).
  void give_way(std::chrono::microseconds beside = std::chrono::microseconds(0));
  void stop();  // releases every give_way(), now and later
  int64_t steps() const;  // steps ended

 private:
  mutable std::mutex mutex_;
  std::condition_variable ended_;
  bool stepping_ = false, stopped_ = false;
  std::chrono::steady_clock::time_point began_;  // the step under way's start
  int64_t ended_steps_ = 0;
};

}  // namespace personaplex::serving
