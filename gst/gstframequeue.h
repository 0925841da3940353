// Live-mode input of the personaplex element: samples arriving from the
// sink pad wait here, in arrival order, until the clock-paced task takes one
// frame per period. Bounded: a live upstream that runs ahead loses its
// oldest frames; a non-live one is held back (push blocks).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

namespace gstpersonaplex {

class FrameQueue {
 public:
  enum class Take { kFrame, kEmpty, kEos, kFlushing };

  explicit FrameQueue(size_t frame_size = 1) : frame_(frame_size) {}

  // Frame size and the most frames kept waiting (at least 1).
  void configure(size_t frame_size, size_t capacity_frames);

  // Appends samples. Beyond capacity: drops the oldest frames when
  // `drop_oldest` (adding their count to *dropped), else waits for room.
  // false when flushing.
  bool push(const float *samples, size_t n, bool drop_oldest, uint64_t *dropped);
  // After the last push: the remainder becomes a final, zero-padded frame.
  void mark_eos();

  // One frame into *frame (frame_size samples) with its count of real
  // samples in *real (less than frame_size only for the last one at EOS).
  // kEmpty when no frame is complete; kEos when drained after mark_eos().
  Take take(std::vector<float> *frame, size_t *real);
  // Blocks until take() would give a frame, EOS or flushing (no clock to pace by).
  void wait_for_frame();
  // Drops up to `frames` whole waiting frames; returns how many.
  size_t drop(size_t frames);
  size_t frames_waiting() const;

  // Flushing wakes and fails every wait and push; clear() forgets all,
  // EOS included.
  void set_flushing(bool flushing);
  void clear();

 private:
  bool complete_locked() const { return samples_.size() >= frame_ || (eos_ && !samples_.empty()); }

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<float> samples_;
  size_t frame_;
  size_t capacity_ = 4;
  bool eos_ = false;
  bool flushing_ = false;
};

}  // namespace gstpersonaplex
