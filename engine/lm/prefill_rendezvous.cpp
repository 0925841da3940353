#include "lm/prefill_rendezvous.h"

#include <algorithm>
#include <exception>

#include "core/error.h"
#include "core/thread_stream.h"
#include "lm/temporal.h"

namespace personaplex::lm {

struct PrefillRendezvous::Entry {
  at::Tensor input;
  TemporalState *state;
  bool taken = false, done = false;
  std::exception_ptr error;
};

PrefillRendezvous::PrefillRendezvous(std::chrono::microseconds window, int64_t max_rows)
    : window_(window), max_rows_(std::max<int64_t>(max_rows, 1)) {}

PrefillRendezvous::Expecting::Expecting(PrefillRendezvous *r) : r_(r) {
  if (!r_) return;
  std::lock_guard<std::mutex> lock(r_->mutex_);
  ++r_->expected_;
}

PrefillRendezvous::Expecting::~Expecting() {
  if (!r_) return;
  std::lock_guard<std::mutex> lock(r_->mutex_);
  --r_->expected_;
  r_->changed_.notify_all();  // a leader may have waited for this thread
}

void PrefillRendezvous::run(const LmWeights &w, const at::Tensor &input, TemporalState &state) {
  // A leader reads the input on its own stream.
  synchronize_current_stream(input.device());
  auto e = std::make_shared<Entry>();
  e->input = input;
  e->state = &state;
  std::unique_lock<std::mutex> lock(mutex_);
  waiting_.push_back(e);
  ++in_run_;
  changed_.notify_all();
  // Lead when no leader gathers (one may be running its pass: this chunk
  // starts the next), else wait to be taken and done.
  for (;;) {
    changed_.wait(lock, [&] { return e->done || (!e->taken && !gathering_); });
    if (e->done) break;
    lead(w, e, lock);
  }
  --in_run_;
  if (e->error) std::rethrow_exception(e->error);
}

void PrefillRendezvous::lead(const LmWeights &w, const std::shared_ptr<Entry> &own,
                             std::unique_lock<std::mutex> &lock) {
  gathering_ = true;
  // Every thread expected is here (waiting, or in a pass) or the window ended.
  changed_.wait_until(lock, std::chrono::steady_clock::now() + window_, [&] { return in_run_ >= expected_; });
  // The leader's own chunk first, then the others in their order, within the
  // rows of one pass; those left lead the next.
  std::vector<std::shared_ptr<Entry>> taken{own};
  int64_t rows = own->input.size(1);
  for (const auto &e : waiting_)
    if (e != own && rows + e->input.size(1) <= max_rows_) {
      taken.push_back(e);
      rows += e->input.size(1);
    }
  for (const auto &e : taken) e->taken = true;
  waiting_.erase(std::remove_if(waiting_.begin(), waiting_.end(), [](const auto &e) { return e->taken; }),
                 waiting_.end());
  gathering_ = false;
  changed_.notify_all();
  lock.unlock();
  std::exception_ptr error;
  try {
    std::vector<PrefillChunk> chunks;
    for (const auto &e : taken) chunks.push_back(PrefillChunk{e->input, e->state});
    temporal_prefill_chunks(w, chunks);
    // The others go on on their own streams: the keys and values written.
    synchronize_current_stream(own->input.device());
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  ++passes_;
  chunks_ += int64_t(taken.size());
  for (const auto &e : taken) {
    e->error = error;
    e->done = true;
  }
  changed_.notify_all();
}

int64_t PrefillRendezvous::passes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return passes_;
}

int64_t PrefillRendezvous::chunks() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return chunks_;
}

}  // namespace personaplex::lm
