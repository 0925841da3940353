// PERSONAPLEX_STALL_LOG=1: a line on stderr for each batch step that started
// late (over 100 ms after the one before: calls held up, or none talking) or ran
// long (over 50 ms), and for each join as it becomes a member, on the
// system's monotonic clock (seconds), which a load test's client reads too
// (chat-load.py's run_start_monotonic_s): a stall the callers heard lines up
// with what the batch did then.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace personaplex::serving {

class StepLog {
 public:
  using Time = std::chrono::steady_clock::time_point;
  StepLog();
  bool on() const { return on_; }
  // A step of `rows` submissions, the first submitted at `first`, run from
  // `began` to `ended`.
  void step(Time first, Time began, Time ended, size_t rows);
  // A join became a member (after `prompts_ms` of prompts and `capture_ms`
  // of its first graphs).
  void join(int64_t slot, double prompts_ms, double capture_ms) const;

 private:
  bool on_;
  Time last_began_{};
};

}  // namespace personaplex::serving
