// Captures a batch step's next shapes ahead of time, on a thread of its own:
// when the attention span is about to grow past a boundary, or one more call
// would widen the batch, the step of that shape is captured while the
// current one keeps replaying, so the change costs no step a capture (which
// for the released model stalls every conversation for a large part of a
// second). Keys asked for once are not asked for again until forget().
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "core/graph_cache.h"

namespace personaplex::serving {

class GraphPreparer {
 public:
  explicit GraphPreparer(GraphCache &cache);
  ~GraphPreparer();  // waits for a capture under way, drops the rest
  GraphPreparer(const GraphPreparer &) = delete;
  GraphPreparer &operator=(const GraphPreparer &) = delete;

  // Queues the capture of `key` (see GraphCache::prepare for what `step`
  // may touch) unless it was asked for before.
  void ask(const std::vector<int64_t> &key, std::function<void()> step);
  void forget();
  int64_t prepared() const;  // captures that took
  // Blocks until nothing is queued or being captured, or `timeout` passed;
  // true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);

 private:
  void run();

  GraphCache &cache_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;  // the queue ran dry
  bool busy_ = false;             // a capture is under way
  std::deque<std::pair<std::vector<int64_t>, std::function<void()>>> queue_;
  std::set<std::vector<int64_t>> asked_;
  int64_t prepared_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace personaplex::serving
