#include "serving/graph_preparer.h"

#include <ATen/core/grad_mode.h>

namespace personaplex::serving {

GraphPreparer::GraphPreparer(GraphCache &cache) : cache_(cache), thread_([this] { run(); }) {}

GraphPreparer::~GraphPreparer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    queue_.clear();
  }
  wake_.notify_all();
  thread_.join();
}

void GraphPreparer::ask(const std::vector<int64_t> &key, std::function<void()> step) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!asked_.insert(key).second) return;
    queue_.emplace_back(key, std::move(step));
  }
  wake_.notify_all();
}

void GraphPreparer::forget() {
  std::lock_guard<std::mutex> lock(mutex_);
  asked_.clear();
  queue_.clear();
}

int64_t GraphPreparer::prepared() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return prepared_;
}

bool GraphPreparer::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mutex_);
  return idle_.wait_for(lock, timeout, [this] { return stop_ || (queue_.empty() && !busy_); });
}

void GraphPreparer::run() {
  at::NoGradGuard no_grad;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    bool took = false;
    try {
      took = cache_.prepare(job.first, job.second);
    } catch (const std::exception &) {
      // A failed preparation only means the step captures when it comes.
    }
    lock.lock();
    busy_ = false;
    if (took)
      ++prepared_;
    else
      asked_.erase(job.first);  // not yet possible, or failed: may be asked again
    if (queue_.empty()) idle_.notify_all();
  }
  idle_.notify_all();
}

}  // namespace personaplex::serving
