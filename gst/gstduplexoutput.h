// The two source pads of the personaplex element: agent audio on `src`
// (following the input's format unless downstream wants another: see
// gstpcmnegotiation.h) and text on `text_src` (pieces, words or cues,
// through TextOutput, which pushes them from a task of its own). Sends each
// pad's stream-start, caps and segment before its first data and combines
// the pads' flow returns.
//
// Used by one streaming thread at a time; the set_*() calls may come from
// another thread (they only mark what to send next).
#pragma once

#include <gst/audio/audio.h>
#include <gst/base/gstflowcombiner.h>

#include <mutex>
#include <memory>
#include <string>

#include "gsttextoutput.h"

namespace gstpersonaplex {

class DuplexOutput {
 public:
  DuplexOutput(GstElement *element, GstPad *audio_pad, GstPad *text_pad);
  ~DuplexOutput();
  DuplexOutput(const DuplexOutput &) = delete;
  DuplexOutput &operator=(const DuplexOutput &) = delete;

  void set_rate(gint rate);
  // The format the input has (and the output prefers).
  void set_preferred_format(GstAudioFormat format);
  // A new stream: stream-start (group id of `upstream` when it has one) and
  // segment go out again before the next data.
  void set_stream_start(GstEvent *upstream);
  void set_segment(const GstSegment &segment);
  // Everything goes out again (a fresh start of the element).
  void reset();

  struct Frame {
    const float *pcm = nullptr;
    size_t samples = 0;
    GstClockTime pts = GST_CLOCK_TIME_NONE;
    GstClockTime duration = GST_CLOCK_TIME_NONE;
    std::string text;  // the frame's piece; "" = none
    gint64 step = 0;
    bool discont = false;
  };
  // The frame's audio, then its piece to the text pad. Returns the
  // combined flow: NOT_LINKED only when neither pad is linked.
  GstFlowReturn push(const Frame &frame);
  // A GAP on both pads (frames skipped to catch up with the clock).
  void push_gap(GstClockTime pts, GstClockTime duration);
  void push_eos();
  // Forwards a flush event to both pads; a flush stop also resets the flow.
  void push_flush(GstEvent *event);

  GstAudioFormat format() const { return format_; }
  TextOutput &text() { return *text_out_; }

 private:
  bool send_headers();
  bool negotiate();

  GstElement *element_;
  GstPad *audio_, *text_;
  GstFlowCombiner *combiner_;
  std::mutex mutex_;  // guards the pending fields below
  GstAudioFormat preferred_ = GST_AUDIO_FORMAT_F32LE;
  gint rate_ = 24000;
  GstEvent *upstream_start_ = nullptr;
  GstSegment segment_;
  bool need_start_ = true, need_caps_ = true, need_segment_ = true;
  GstAudioFormat format_ = GST_AUDIO_FORMAT_UNKNOWN;  // the negotiated one
  std::unique_ptr<TextOutput> text_out_;
  GstClockTime end_ = GST_CLOCK_TIME_NONE;  // of the last audio pushed
};

}  // namespace gstpersonaplex
