#include "serving/step_log.h"

#include <cstdio>

#include "core/env_choice.h"

namespace personaplex::serving {

namespace {

double seconds(StepLog::Time t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
double ms(StepLog::Time from, StepLog::Time to) { return std::chrono::duration<double, std::milli>(to - from).count(); }

}  // namespace

StepLog::StepLog() : on_(env_choice_is("PERSONAPLEX_STALL_LOG", "1")) {}

void StepLog::step(Time first, Time began, Time ended, size_t rows) {
  if (!on_) return;
  const bool had_one = last_began_ != Time{};
  const double after = had_one ? ms(last_began_, began) : 0;
  last_began_ = began;
  if (after > 100 || ms(began, ended) > 50)
    std::fprintf(stderr, "batch step at %.3f s: %.1f ms after the step before, %.1f ms long, %zu rows, "
                 "%.1f ms after its first submission\n", seconds(began), after, ms(began, ended), rows,
                 ms(first, began));
}

void StepLog::join(int64_t slot, double prompts_ms, double capture_ms) const {
  if (!on_) return;
  std::fprintf(stderr, "batch join at %.3f s: slot %lld, %.1f ms prompts, %.1f ms first graphs\n",
               seconds(std::chrono::steady_clock::now()), static_cast<long long>(slot), prompts_ms, capture_ms);
}

}  // namespace personaplex::serving
