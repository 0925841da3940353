#include "serving/stage_timer.h"

#include <c10/core/impl/VirtualGuardImpl.h>

#include <chrono>

namespace personaplex::serving {

namespace {

thread_local StageTimer *installed = nullptr;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void StageTimer::install() { installed = this; }
void StageTimer::uninstall() {
  if (installed == this) installed = nullptr;
}
StageTimer::~StageTimer() { uninstall(); }
StageTimer *StageTimer::current() { return installed; }

void StageTimer::synchronize() const {
  if (device_.is_cpu()) return;
  c10::impl::VirtualGuardImpl impl(device_.type());
  impl.getStream(device_).synchronize();
}

Stage::Stage(const char *name) : timer_(installed), name_(name) {
  if (!timer_) return;
  timer_->synchronize();
  start_ns_ = now_ns();
}

Stage::~Stage() {
  if (!timer_) return;
  timer_->synchronize();
  timer_->add(name_, double(now_ns() - start_ns_) / 1e6);
}

}  // namespace personaplex::serving
