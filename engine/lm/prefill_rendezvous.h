// Prompt chunks of several conversations over one model, prefilled in one
// pass (temporal_prefill_chunks): calls that join together (a crowd at a
// server's start) each read the weights once per chunk on their own; met
// here, their rows share the products. A conversation whose TemporalState
// names a rendezvous brings its chunks here; the first to come leads: it
// waits, at most `window`, for the others expected (threads inside a
// prefill that may bring one: Expecting), runs every chunk that came in one
// pass on its own thread and stream, and hands the others their results.
// Chunks of conversations that are prefilling alone pass straight through
// (nobody else expected). Thread-safe.
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "lm/weights.h"

namespace personaplex::lm {

struct TemporalState;

class PrefillRendezvous {
 public:
  // `window`: how long a leader waits for the chunks expected; `max_rows`:
  // the most rows (steps of all chunks) one pass takes.
  PrefillRendezvous(std::chrono::microseconds window, int64_t max_rows);

  // While alive, a chunk may come from this thread: leaders wait for it.
  class Expecting {
   public:
    explicit Expecting(PrefillRendezvous *r);
    ~Expecting();
    Expecting(const Expecting &) = delete;
    Expecting &operator=(const Expecting &) = delete;

   private:
    PrefillRendezvous *r_;
  };

  // Prefills `input` [1, T, dim] into `state`, alone or with others' chunks
  // (the same as temporal_prefill up to the products' rounding). On a GPU
  // the caller's stream has finished `input` when this returns, and the
  // cache holds the chunk's keys and values.
  void run(const LmWeights &w, const at::Tensor &input, TemporalState &state);

  // Passes run and the chunks they held (a test's and a benchmark's view).
  int64_t passes() const;
  int64_t chunks() const;

 private:
  struct Entry;
  // Gathers, runs one pass with `own` in it, hands out the results.
  void lead(const LmWeights &w, const std::shared_ptr<Entry> &own, std::unique_lock<std::mutex> &lock);

  const std::chrono::microseconds window_;
  const int64_t max_rows_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::shared_ptr<Entry>> waiting_;
  int64_t expected_ = 0;    // threads inside Expecting
  int64_t in_run_ = 0;      // threads inside run(): waiting, or in a pass
  bool gathering_ = false;  // a leader is waiting for chunks
  int64_t passes_ = 0, chunks_ = 0;
};

}  // namespace personaplex::lm
