#include "core/yield_point.h"

#include <utility>

namespace personaplex {

namespace {
thread_local std::function<void()> current_hook;
}

void yield_point() {
  if (current_hook) current_hook();
}

YieldTo::YieldTo(std::function<void()> hook) : previous_(std::exchange(current_hook, std::move(hook))) {}

YieldTo::~YieldTo() { current_hook = std::move(previous_); }

}  // namespace personaplex
