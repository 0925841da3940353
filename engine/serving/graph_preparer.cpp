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

void GraphPreparer::run() {
  at::NoGradGuard no_grad;
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    bool took = false;
    try {
      took = cache_.prepare(job.first, job.second);
    } catch (const std::exception &) {
      // A failed preparation only means the step captures when it comes.
    }
    lock.lock();
    if (took)
      ++prepared_;
    else
      asked_.erase(job.first);  // not yet possible, or failed: may be asked again
  }
}

}  // namespace personaplex::serving
