// Timing statistics of the personaplex element's steps: what its periodic
// `personaplex-stats` message reports, and when a late step deserves a
// warning (the first of a burst of late steps, at most once per interval).
#pragma once

#include <gst/gst.h>

namespace gstpersonaplex {

class StepStats {
 public:
  // A step that took `ms` of wall time.
  void record_step(double ms);
  // A step that finished after its deadline; true when this one should be
  // warned about (it starts a burst and no warning came in `min_gap_us`).
  bool record_late(gint64 now_us, gint64 min_gap_us = 5 * G_USEC_PER_SEC);
  void record_on_time() { in_burst_ = false; }
  void record_silence() { ++silence_; }
  void record_dropped(guint64 frames) { dropped_ += frames; }
  void record_skipped(guint64 frames) { skipped_ += frames; }
  void set_behind(guint64 frames) { behind_ = frames; }

  // Whether `frames_per_message` steps have passed since the last message.
  bool message_due(guint64 frames_per_message) const { return interval_frames_ >= frames_per_message; }
  // The personaplex-stats structure of the steps since the last one; starts
  // a new interval.
  GstStructure *take_message(GstClockTime frame_duration, gboolean live);

  guint64 processed() const { return processed_; }
  guint64 late() const { return late_; }
  void reset() { *this = StepStats(); }

 private:
  double sum_ms_ = 0, max_ms_ = 0;
  guint64 interval_frames_ = 0;
  guint64 processed_ = 0, late_ = 0, silence_ = 0, dropped_ = 0, skipped_ = 0, behind_ = 0;
  bool in_burst_ = false;
  gint64 last_warning_us_ = G_MININT64 / 2;
};

}  // namespace gstpersonaplex
