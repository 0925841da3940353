#include "gstduplexoutput.h"

#include "gstpcmnegotiation.h"
#include "gstpcmsamples.h"

GST_DEBUG_CATEGORY_EXTERN(gst_personaplex_debug);
#define GST_CAT_DEFAULT gst_personaplex_debug

namespace gstpersonaplex {

DuplexOutput::DuplexOutput(GstElement *element, GstPad *audio_pad, GstPad *text_pad)
    : element_(element), audio_(audio_pad), text_(text_pad), combiner_(gst_flow_combiner_new()),
      text_out_(std::make_unique<TextOutput>(element, text_pad)) {
  gst_flow_combiner_add_pad(combiner_, audio_);
  gst_flow_combiner_add_pad(combiner_, text_);
  gst_segment_init(&segment_, GST_FORMAT_TIME);
}

DuplexOutput::~DuplexOutput() {
  gst_flow_combiner_free(combiner_);
  if (upstream_start_) gst_event_unref(upstream_start_);
}

void DuplexOutput::set_rate(gint rate) {
  std::lock_guard<std::mutex> lock(mutex_);
  need_caps_ |= rate != rate_;
  rate_ = rate;
}

void DuplexOutput::set_preferred_format(GstAudioFormat format) {
  std::lock_guard<std::mutex> lock(mutex_);
  need_caps_ |= format != preferred_;
  preferred_ = format;
}

void DuplexOutput::set_stream_start(GstEvent *upstream) {
  std::lock_guard<std::mutex> lock(mutex_);
  gst_mini_object_replace(reinterpret_cast<GstMiniObject **>(&upstream_start_), GST_MINI_OBJECT_CAST(upstream));
  need_start_ = true;
}

void DuplexOutput::set_segment(const GstSegment &segment) {
  std::lock_guard<std::mutex> lock(mutex_);
  segment_ = segment;
  need_segment_ = true;
}

void DuplexOutput::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  gst_segment_init(&segment_, GST_FORMAT_TIME);
  need_start_ = need_caps_ = need_segment_ = true;
  format_ = GST_AUDIO_FORMAT_UNKNOWN;
  end_ = GST_CLOCK_TIME_NONE;
  gst_flow_combiner_reset(combiner_);
}

// A format downstream takes (the preferred one when it does).
bool DuplexOutput::negotiate() {
  GstAudioFormat preferred;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    preferred = preferred_;
  }
  const GstAudioFormat format = pcm_negotiate_output(element_, audio_, rate_, preferred);
  if (format == GST_AUDIO_FORMAT_UNKNOWN) return false;
  format_ = format;
  return true;
}

bool DuplexOutput::send_headers() {
  bool start, caps, segment;
  GstEvent *upstream = nullptr;
  GstSegment seg;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    start = need_start_;
    caps = need_caps_ || start;
    segment = need_segment_ || start;
    need_start_ = need_caps_ = need_segment_ = false;
    if (upstream_start_) upstream = gst_event_ref(upstream_start_);
    seg = segment_;
  }
  if (start) {
    guint group = 0;
    if (!upstream || !gst_event_parse_group_id(upstream, &group)) group = gst_util_group_id_next();
    for (GstPad *pad : {audio_, text_}) {
      gchar *id = gst_pad_create_stream_id(pad, element_, pad == audio_ ? "audio" : "text");
      GstEvent *event = gst_event_new_stream_start(id);
      gst_event_set_group_id(event, group);
      if (pad == text_)
        text_out_->queue_event(event);  // in order with the text pad's data
      else
        gst_pad_push_event(pad, event);
      g_free(id);
    }
    GstCaps *text_caps = gst_caps_new_simple("text/x-raw", "format", G_TYPE_STRING, "utf8", nullptr);
    text_out_->queue_event(gst_event_new_caps(text_caps));
    gst_caps_unref(text_caps);
  }
  if (upstream) gst_event_unref(upstream);
  // A downstream asking to renegotiate (the flag is cleared by the check).
  caps |= gst_pad_check_reconfigure(audio_) || format_ == GST_AUDIO_FORMAT_UNKNOWN;
  if (caps && !negotiate()) {
    std::lock_guard<std::mutex> lock(mutex_);
    need_caps_ = true;
    return false;
  }
  if (segment) {
    gst_pad_push_event(audio_, gst_event_new_segment(&seg));
    text_out_->queue_event(gst_event_new_segment(&seg));
  }
  return true;
}

GstFlowReturn DuplexOutput::push(const Frame &f) {
  if (!send_headers()) return GST_FLOW_NOT_NEGOTIATED;
  GstBuffer *audio = pcm_buffer_from_floats(f.pcm, f.samples, format_);
  GST_BUFFER_PTS(audio) = f.pts;
  GST_BUFFER_DURATION(audio) = f.duration;
  if (f.discont) GST_BUFFER_FLAG_SET(audio, GST_BUFFER_FLAG_DISCONT);
  // The text first: a sink prerolling on the audio blocks this thread.
  text_out_->frame(f.text, f.pts, f.duration, f.step);
  if (GST_CLOCK_TIME_IS_VALID(f.pts) && GST_CLOCK_TIME_IS_VALID(f.duration)) end_ = f.pts + f.duration;
  GstFlowReturn ret = gst_flow_combiner_update_pad_flow(combiner_, audio_, gst_pad_push(audio_, audio));
  const GstFlowReturn text_ret = text_out_->flow();
  GstFlowReturn combined = gst_flow_combiner_update_pad_flow(combiner_, text_, text_ret);
  return ret == GST_FLOW_FLUSHING ? ret : combined;
}

void DuplexOutput::push_gap(GstClockTime pts, GstClockTime duration) {
  if (!send_headers()) return;
  text_out_->gap(pts, duration);
  gst_pad_push_event(audio_, gst_event_new_gap(pts, duration));
  if (GST_CLOCK_TIME_IS_VALID(pts) && GST_CLOCK_TIME_IS_VALID(duration)) end_ = pts + duration;
}

void DuplexOutput::push_eos() {
  send_headers();
  text_out_->eos(end_);
  gst_pad_push_event(audio_, gst_event_new_eos());
}

void DuplexOutput::push_flush(GstEvent *event) {
  const bool stop = GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP;
  gst_pad_push_event(audio_, gst_event_ref(event));
  if (stop)
    text_out_->flush_stop(event);
  else
    text_out_->flush_start(event);
  if (stop) {
    std::lock_guard<std::mutex> lock(mutex_);
    need_segment_ = true;
    gst_flow_combiner_reset(combiner_);
  }
}

}  // namespace gstpersonaplex
