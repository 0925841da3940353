#include "gststepstats.h"

#include <algorithm>

namespace gstpersonaplex {

void StepStats::record_step(double ms) {
  sum_ms_ += ms;
  max_ms_ = std::max(max_ms_, ms);
  ++interval_frames_;
  ++processed_;
}

bool StepStats::record_late(gint64 now_us, gint64 min_gap_us) {
  ++late_;
  const bool starts_burst = !in_burst_;
  in_burst_ = true;
  if (!starts_burst || now_us - last_warning_us_ < min_gap_us) return false;
  last_warning_us_ = now_us;
  return true;
}

GstStructure *StepStats::take_message(GstClockTime frame_duration, gboolean live) {
  const double mean = interval_frames_ ? sum_ms_ / double(interval_frames_) : 0.0;
  const double frame_ms = double(frame_duration) / GST_MSECOND;
  GstStructure *s = gst_structure_new("personaplex-stats",
      "step-time-ms", G_TYPE_DOUBLE, mean,
      "max-step-time-ms", G_TYPE_DOUBLE, max_ms_,
      "real-time-factor", G_TYPE_DOUBLE, frame_ms > 0 ? mean / frame_ms : 0.0,
      "frames-processed", G_TYPE_UINT64, processed_,
      "frames-late", G_TYPE_UINT64, late_,
      "frames-behind", G_TYPE_UINT64, behind_,
      "frames-skipped", G_TYPE_UINT64, skipped_,
      "frames-dropped", G_TYPE_UINT64, dropped_,
      "silence-frames", G_TYPE_UINT64, silence_,
      "live", G_TYPE_BOOLEAN, live,
      nullptr);
  sum_ms_ = max_ms_ = 0;
  interval_frames_ = 0;
  return s;
}

}  // namespace gstpersonaplex
