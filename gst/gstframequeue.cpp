#include "gstframequeue.h"

#include <algorithm>

namespace gstpersonaplex {

void FrameQueue::configure(size_t frame_size, size_t capacity_frames) {
  std::lock_guard<std::mutex> lock(mutex_);
  frame_ = std::max<size_t>(frame_size, 1);
  capacity_ = std::max<size_t>(capacity_frames, 1);
}

bool FrameQueue::push(const float *samples, size_t n, bool drop_oldest, uint64_t *dropped) {
  std::unique_lock<std::mutex> lock(mutex_);
  const size_t limit = capacity_ * frame_;
  if (!drop_oldest)
    changed_.wait(lock, [&] { return flushing_ || samples_.size() < limit; });
  if (flushing_) return false;
  samples_.insert(samples_.end(), samples, samples + n);
  while (drop_oldest && samples_.size() > limit) {
    samples_.erase(samples_.begin(), samples_.begin() + long(frame_));
    if (dropped) ++*dropped;
  }
  changed_.notify_all();
  return true;
}

void FrameQueue::mark_eos() {
  std::lock_guard<std::mutex> lock(mutex_);
  eos_ = true;
  changed_.notify_all();
}

FrameQueue::Take FrameQueue::take(std::vector<float> *frame, size_t *real) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (flushing_) return Take::kFlushing;
  if (!complete_locked()) return eos_ ? Take::kEos : Take::kEmpty;
  const size_t n = std::min(frame_, samples_.size());
  frame->assign(frame_, 0.0f);
  std::copy(samples_.begin(), samples_.begin() + long(n), frame->begin());
  samples_.erase(samples_.begin(), samples_.begin() + long(n));
  *real = n;
  changed_.notify_all();
  return Take::kFrame;
}

void FrameQueue::wait_for_frame() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return flushing_ || eos_ || complete_locked(); });
}

size_t FrameQueue::drop(size_t frames) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t n = std::min(frames, samples_.size() / frame_);
  samples_.erase(samples_.begin(), samples_.begin() + long(n * frame_));
  changed_.notify_all();
  return n;
}

size_t FrameQueue::frames_waiting() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return samples_.size() / frame_;
}

void FrameQueue::set_flushing(bool flushing) {
  std::lock_guard<std::mutex> lock(mutex_);
  flushing_ = flushing;
  changed_.notify_all();
}

void FrameQueue::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  samples_.clear();
  eos_ = false;
  changed_.notify_all();
}

}  // namespace gstpersonaplex
