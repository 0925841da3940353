// Where a batch's steps and the joins' prompts meet: the batch thread marks
// each step's start and end; a join's prompts, between two layers, give way
// to the step under way. They wait for the end of that step only, not for
// a moment with no step: a batch that steps back to back (one that barely
// keeps up) still lets them on, a layer a step.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace personaplex::serving {

class StepGate {
 public:
  void begin_step();
  void end_step();
  // Returns at once when no step is under way, else when it has ended (or
  // the gate stopped).
  void give_way();
  void stop();  // releases every give_way(), now and later
  int64_t steps() const;  // steps ended

 private:
  mutable std::mutex mutex_;
  std::condition_variable ended_;
  bool stepping_ = false, stopped_ = false;
  int64_t ended_steps_ = 0;
};

}  // namespace personaplex::serving
