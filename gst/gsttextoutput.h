// The personaplex element's `text_src` pad: the conversation's text as
// pieces, words or subtitle cues (personaplex::text::TextTrack), GAP events
// up to where nothing more can come, a `personaplex-word` element message
// per word. Pushed from the pad's own task through a small bounded queue,
// as demuxers with an internal multiqueue do: a text branch without a queue
// then prerolls on its own, and never holds the audio branch back.
//
// frame(), gap(), eos() and queue_event() come from one streaming thread at
// a time; flush_*() and activate() from any.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>

#include "text/text_track.h"

namespace gstpersonaplex {

class TextOutput {
 public:
  TextOutput(GstElement *element, GstPad *pad);
  ~TextOutput();
  TextOutput(const TextOutput &) = delete;
  TextOutput &operator=(const TextOutput &) = delete;

  // The unit and cue layout; forgets what is pending.
  void configure(const personaplex::text::TextTrackOptions &options);
  // A serialized event (stream-start, caps, segment), in order with the data.
  void queue_event(GstEvent *event);
  // The frame's piece ("" for none) over [pts, pts + duration).
  void frame(const std::string &piece, GstClockTime pts, GstClockTime duration, gint64 step);
  // Frames without text (skipped, or silence).
  void gap(GstClockTime pts, GstClockTime duration);
  // End of the stream at `end`: what is pending, then EOS.
  void eos(GstClockTime end);
  void flush_start(GstEvent *event);
  void flush_stop(GstEvent *event);
  // The flow of the pad's last push (pushes happen on its task).
  GstFlowReturn flow() const { return flow_; }
  // Pad activation in push mode: starts or stops the task.
  bool activate(bool active);

 private:
  static void loop(gpointer data);
  void push_one(GstMiniObject *item);
  void enqueue(GstMiniObject *item);
  void send(const personaplex::text::TimedText &item);
  void send_all(const personaplex::text::TextTrack::Output &out);
  void post_word(const personaplex::text::TimedText &word);
  void advance(GstClockTime to);
  void clear();

  GstElement *element_;
  GstPad *pad_;
  const size_t capacity_ = 32;  // items waiting for the task
  std::mutex mutex_;            // guards the queue and flushing_
  std::condition_variable changed_;
  std::deque<GstMiniObject *> queue_;
  guint64 queued_ = 0;  // items ever queued
  bool flushing_ = true;
  std::atomic<GstFlowReturn> flow_{GST_FLOW_OK};
  // The streaming thread's.
  personaplex::text::TextTrack track_;
  GstClockTime position_ = GST_CLOCK_TIME_NONE;  // covered by buffers and GAPs
};

}  // namespace gstpersonaplex
