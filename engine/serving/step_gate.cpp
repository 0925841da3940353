#include "serving/step_gate.h"

namespace personaplex::serving {

void StepGate::begin_step() {
  std::lock_guard<std::mutex> lock(mutex_);
  stepping_ = true;
  began_ = std::chrono::steady_clock::now();
}

void StepGate::end_step() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stepping_ = false;
    ++ended_steps_;
  }
  ended_.notify_all();
}

void StepGate::give_way(std::chrono::microseconds beside) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!stepping_ || std::chrono::steady_clock::now() - began_ < beside) return;
  const int64_t step = ended_steps_;
  ended_.wait(lock, [&] { return stopped_ || ended_steps_ != step; });
}

void StepGate::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
  }
  ended_.notify_all();
}

int64_t StepGate::steps() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ended_steps_;
}

}  // namespace personaplex::serving
