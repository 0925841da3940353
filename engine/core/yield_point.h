// Points where a thread's long work may give way to more urgent work of
// other threads: a join's prompts, between two of their layers, to the
// steps of the calls already talking (which share the GPU with them, and
// whose many small kernels each wait behind the prompts' large ones when
// both run at once). The long work calls yield_point(); whoever runs it on
// a thread says what giving way means there with a YieldTo.
#pragma once

#include <functional>

namespace personaplex {

// Calls the calling thread's current YieldTo hook; nothing without one.
void yield_point();

// Makes `hook` the calling thread's yield point for as long as it lives
// (the previous one back after).
class YieldTo {
 public:
  explicit YieldTo(std::function<void()> hook);
  ~YieldTo();
  YieldTo(const YieldTo &) = delete;
  YieldTo &operator=(const YieldTo &) = delete;

 private:
  std::function<void()> previous_;
};

}  // namespace personaplex
