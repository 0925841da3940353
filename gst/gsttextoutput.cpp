#include "gsttextoutput.h"

#include <algorithm>

GST_DEBUG_CATEGORY_EXTERN(gst_personaplex_debug);
#define GST_CAT_DEFAULT gst_personaplex_debug

using personaplex::text::TextTrack;
using personaplex::text::TimedText;

namespace gstpersonaplex {

TextOutput::TextOutput(GstElement *element, GstPad *pad) : element_(element), pad_(pad) {}

TextOutput::~TextOutput() { clear(); }

void TextOutput::configure(const personaplex::text::TextTrackOptions &options) {
  track_ = TextTrack(options);
  position_ = GST_CLOCK_TIME_NONE;
}

void TextOutput::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (GstMiniObject *item : queue_) gst_mini_object_unref(item);
  queue_.clear();
  changed_.notify_all();
}

// Waits for room; dropped while flushing.
void TextOutput::enqueue(GstMiniObject *item) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return flushing_ || queue_.size() < capacity_; });
  if (flushing_) {
    lock.unlock();
    gst_mini_object_unref(item);
    return;
  }
  queue_.push_back(item);
  queued_++;
  changed_.notify_all();
}

void TextOutput::queue_event(GstEvent *event) { enqueue(GST_MINI_OBJECT_CAST(event)); }

void TextOutput::advance(GstClockTime to) {
  if (!GST_CLOCK_TIME_IS_VALID(position_)) position_ = to;
  if (to <= position_) return;
  queue_event(gst_event_new_gap(position_, to - position_));
  position_ = to;
}

void TextOutput::send(const TimedText &item) {
  GstClockTime start = GstClockTime(item.start);
  if (GST_CLOCK_TIME_IS_VALID(position_)) start = std::max(start, position_);  // never back in time
  const GstClockTime end = std::max(start, GstClockTime(item.end));
  GstBuffer *buffer = gst_buffer_new_memdup(item.text.data(), item.text.size());
  GST_BUFFER_PTS(buffer) = start;
  GST_BUFFER_DURATION(buffer) = end - start;
  enqueue(GST_MINI_OBJECT_CAST(buffer));
  position_ = end;
}

void TextOutput::post_word(const TimedText &w) {
  gst_element_post_message(element_, gst_message_new_element(GST_OBJECT(element_),
      gst_structure_new("personaplex-word", "text", G_TYPE_STRING, w.text.c_str(),
                        "pts", G_TYPE_UINT64, guint64(w.start), "duration", G_TYPE_UINT64, guint64(w.end - w.start),
                        "step", G_TYPE_INT64, gint64(w.first_step), nullptr)));
}

void TextOutput::send_all(const TextTrack::Output &out) {
  for (const TimedText &w : out.words) post_word(w);
  for (const TimedText &item : out.items) send(item);
  if (auto settled = track_.settled()) advance(GstClockTime(*settled));
}

void TextOutput::frame(const std::string &piece, GstClockTime pts, GstClockTime duration, gint64 step) {
  if (!GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(duration)) return;
  if (!GST_CLOCK_TIME_IS_VALID(position_)) position_ = pts;
  const guint64 before = queued_;
  send_all(track_.push(piece, gint64(pts), gint64(pts + duration), step));
  // A word in progress holds the GAPs back: an empty one still lets a sink
  // preroll (or a muxer know where the stream is) meanwhile.
  if (queued_ == before) queue_event(gst_event_new_gap(position_, 0));
}

void TextOutput::gap(GstClockTime pts, GstClockTime duration) { frame("", pts, duration, -1); }

void TextOutput::eos(GstClockTime end) {
  if (GST_CLOCK_TIME_IS_VALID(end) && GST_CLOCK_TIME_IS_VALID(position_))
    send_all(track_.finish(gint64(std::max(end, position_))));
  queue_event(gst_event_new_eos());
}

void TextOutput::flush_start(GstEvent *event) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    flushing_ = true;
    changed_.notify_all();
  }
  gst_pad_push_event(pad_, event);
  gst_pad_pause_task(pad_);
}

void TextOutput::flush_stop(GstEvent *event) {
  {
    // What was queued is dropped, except the stream's start and caps, which
    // a flush does not undo.
    std::lock_guard<std::mutex> lock(mutex_);
    std::deque<GstMiniObject *> kept;
    for (GstMiniObject *item : queue_) {
      const bool sticky = GST_IS_EVENT(item) && (GST_EVENT_TYPE(item) == GST_EVENT_STREAM_START ||
                                                 GST_EVENT_TYPE(item) == GST_EVENT_CAPS);
      if (sticky)
        kept.push_back(item);
      else
        gst_mini_object_unref(item);
    }
    queue_.swap(kept);
  }
  gst_pad_push_event(pad_, event);
  track_.reset();
  position_ = GST_CLOCK_TIME_NONE;
  flow_ = GST_FLOW_OK;
  activate(true);
}

bool TextOutput::activate(bool active) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    flushing_ = !active;
    changed_.notify_all();
  }
  if (active) {
    flow_ = GST_FLOW_OK;
    return gst_pad_start_task(pad_, loop, this, nullptr);
  }
  const bool stopped = gst_pad_stop_task(pad_);
  clear();
  track_.reset();
  position_ = GST_CLOCK_TIME_NONE;
  return stopped;
}

void TextOutput::push_one(GstMiniObject *item) {
  GstFlowReturn ret;
  if (GST_IS_BUFFER(item)) {
    ret = gst_pad_push(pad_, GST_BUFFER_CAST(item));
  } else {
    const bool sent = gst_pad_push_event(pad_, GST_EVENT_CAST(item));
    ret = sent || gst_pad_is_linked(pad_) ? GST_FLOW_OK : GST_FLOW_NOT_LINKED;
  }
  // An error stays until a flush or restart: the element reports it.
  const GstFlowReturn before = flow_;
  if (before == GST_FLOW_OK || before == GST_FLOW_NOT_LINKED) flow_ = ret;
  if (ret != GST_FLOW_OK && ret != GST_FLOW_NOT_LINKED)
    GST_DEBUG_OBJECT(element_, "text push: %s", gst_flow_get_name(ret));
}

void TextOutput::loop(gpointer data) {
  auto *self = static_cast<TextOutput *>(data);
  GstMiniObject *item = nullptr;
  {
    std::unique_lock<std::mutex> lock(self->mutex_);
    self->changed_.wait(lock, [self] { return self->flushing_ || !self->queue_.empty(); });
    if (!self->flushing_) {
      item = self->queue_.front();
      self->queue_.pop_front();
      self->changed_.notify_all();
    }
  }
  if (!item) {
    gst_pad_pause_task(self->pad_);
    return;
  }
  self->push_one(item);
}

}  // namespace gstpersonaplex
