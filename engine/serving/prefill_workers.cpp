#include "serving/prefill_workers.h"

#include <exception>

#include "core/error.h"

namespace personaplex::serving {

struct PrefillWorkers::Task {
  std::function<void()> fn;
  std::exception_ptr error;
  bool done = false;
};

PrefillWorkers::PrefillWorkers(int64_t threads) {
  if (threads <= 0) throw Error("prefill workers: the thread count must be positive");
  own_queue_.resize(size_t(threads));
  for (int64_t i = 0; i < threads; ++i) threads_.emplace_back([this, i] { work(i); });
}

PrefillWorkers::~PrefillWorkers() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (std::thread &t : threads_) t.join();
}

void PrefillWorkers::work(int64_t index) {
  std::deque<std::shared_ptr<Task>> &own = own_queue_[size_t(index)];
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return !own.empty() || !queue_.empty() || stop_; });
    std::deque<std::shared_ptr<Task>> &from = own.empty() ? queue_ : own;
    if (from.empty()) return;  // stopping, nothing left
    std::shared_ptr<Task> task = std::move(from.front());
    from.pop_front();
    lock.unlock();
    try {
      task->fn();
    } catch (...) {
      task->error = std::current_exception();
    }
    lock.lock();
    task->done = true;
    done_.notify_all();
  }
}

void PrefillWorkers::wait_for(const std::shared_ptr<Task> &task) {
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [&] { return task->done; });
}

void PrefillWorkers::run(const std::function<void()> &fn) {
  auto task = std::make_shared<Task>();
  task->fn = fn;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(task);
  }
  wake_.notify_all();
  wait_for(task);
  if (task->error) std::rethrow_exception(task->error);
}

void PrefillWorkers::run_on_each(const std::function<void(int64_t)> &fn) {
  std::vector<std::shared_ptr<Task>> tasks;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int64_t i = 0; i < threads(); ++i) {
      auto task = std::make_shared<Task>();
      task->fn = [fn, i] { fn(i); };
      own_queue_[size_t(i)].push_back(task);
      tasks.push_back(task);
    }
  }
  wake_.notify_all();
  for (const auto &t : tasks) wait_for(t);
  for (const auto &t : tasks)
    if (t->error) std::rethrow_exception(t->error);
}

}  // namespace personaplex::serving
