// Wall time of each stage of a step, for benchmarks. Off unless a
// StageTimer is installed on the calling thread: a stage then costs one
// thread-local pointer test. When on, the device is synchronized at each
// stage boundary so every stage is charged its own work (so never install
// one around code captured as a CUDA graph).
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace personaplex::serving {

class StageTimer {
 public:
  explicit StageTimer(const at::Device &device) : device_(device) {}
  // Installs this timer on the thread (replacing any); uninstall() or the
  // destructor removes it.
  void install();
  void uninstall();
  ~StageTimer();

  void synchronize() const;
  void add(const std::string &stage, double ms) { samples_[stage].push_back(ms); }
  const std::map<std::string, std::vector<double>> &samples() const { return samples_; }
  void clear() { samples_.clear(); }

  static StageTimer *current();

 private:
  at::Device device_;
  std::map<std::string, std::vector<double>> samples_;
};

// Times the enclosing scope as `stage` on the thread's timer, if any.
class Stage {
 public:
  explicit Stage(const char *name);
  ~Stage();
  Stage(const Stage &) = delete;
  Stage &operator=(const Stage &) = delete;

 private:
  StageTimer *timer_;
  const char *name_;
  int64_t start_ns_ = 0;
};

}  // namespace personaplex::serving
