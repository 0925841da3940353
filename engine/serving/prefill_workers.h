// Long-lived threads that run joins' prompts. A prompt run on a thread that
// never ran one before pays for what CUDA keeps per thread and per stream
// (the library handles and their workspaces, the allocator's blocks of the
// thread's own stream): over a second for the released model, against a
// tenth of that on a thread that ran one before. Calls come on threads of
// their own (an element's streaming task, a server's per-call pipeline), so
// their prompts run here instead, on threads that stay warm.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace personaplex::serving {

class PrefillWorkers {
 public:
  explicit PrefillWorkers(int64_t threads);
  ~PrefillWorkers();  // lets the work queued finish
  PrefillWorkers(const PrefillWorkers &) = delete;
  PrefillWorkers &operator=(const PrefillWorkers &) = delete;

  // Runs fn on the first free worker; blocks until it returned, and throws
  // what it threw.
  void run(const std::function<void()> &fn);
  // Runs fn(worker) once on every worker at once (a warm-up); blocks until
  // all returned, and throws the first error.
  void run_on_each(const std::function<void(int64_t)> &fn);

  int64_t threads() const { return int64_t(threads_.size()); }

 private:
  struct Task;
  void work(int64_t index);
  void wait_for(const std::shared_ptr<Task> &task);

  std::mutex mutex_;
  std::condition_variable wake_;  // the workers: a task came, or stop
  std::condition_variable done_;  // the callers: a task ended
  std::deque<std::shared_ptr<Task>> queue_;                  // for any worker
  std::vector<std::deque<std::shared_ptr<Task>>> own_queue_;  // for one
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace personaplex::serving
