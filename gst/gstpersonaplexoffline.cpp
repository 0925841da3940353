// The personaplex element offline (a non-live upstream): one step per
// complete input frame, in the sink pad's thread, as fast as the device
// allows; the output has the input's timestamps and length.
#include <vector>

#include "gstpcmsamples.h"
#include "gstpersonaplexprivate.h"

#define GST_CAT_DEFAULT gst_personaplex_debug

namespace gstpersonaplex {

static GstClockTime adapter_pts(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  guint64 distance = 0;
  const GstClockTime prev = gst_adapter_prev_pts(d->adapter, &distance);
  // On the sample grid: input timestamps are often rounded to the nanosecond.
  if (GST_CLOCK_TIME_IS_VALID(prev))
    return samples_duration(self, gst_util_uint64_scale_round(prev, kRate, GST_SECOND) + distance / sizeof(float));
  if (GST_CLOCK_TIME_IS_VALID(d->next_pts)) return d->next_pts;
  return d->segment.start;
}

// Takes `real` samples (a frame, or the remainder at EOS) and steps.
static GstFlowReturn offline_frame(GstPersonaPlex *self, size_t real) {
  Duplex *d = self->duplex;
  const GstClockTime pts = adapter_pts(self);
  d->scratch.assign(d->frame, 0.0f);
  const guint8 *bytes = static_cast<const guint8 *>(gst_adapter_map(d->adapter, real * sizeof(float)));
  for (size_t i = 0; i < real; ++i) d->scratch[i] = GST_READ_FLOAT_LE(bytes + 4 * i);
  gst_adapter_unmap(d->adapter);
  gst_adapter_flush(d->adapter, real * sizeof(float));
  d->next_pts = GST_CLOCK_TIME_IS_VALID(pts) ? pts + samples_duration(self, real) : GST_CLOCK_TIME_NONE;
  const GstFlowReturn ret = run_step(self, d->scratch.data(), real, pts, d->discont);
  d->discont = false;
  if (GST_CLOCK_TIME_IS_VALID(d->next_pts)) post_progress(self, d->next_pts, false);
  return ret;
}

// Upstream's duration in time, NONE when it does not know.
static GstClockTime upstream_duration(GstPersonaPlex *self) {
  gint64 duration = -1;
  if (!gst_pad_peer_query_duration(self->sinkpad, GST_FORMAT_TIME, &duration) || duration <= 0)
    return GST_CLOCK_TIME_NONE;
  return GstClockTime(duration);
}

void post_progress(GstPersonaPlex *self, GstClockTime position, bool final) {
  Duplex *d = self->duplex;
  const gint64 now = g_get_monotonic_time();
  if (!d->progress_started) {
    d->progress_started = d->progress_posted = now;
    d->progress_first = position;
    return;
  }
  if (!final && now - d->progress_posted < G_USEC_PER_SEC) return;
  d->progress_posted = now;
  const GstClockTime duration = upstream_duration(self);
  const double elapsed = double(now - d->progress_started) / G_USEC_PER_SEC;
  const double media = GST_CLOCK_TIME_IS_VALID(d->progress_first) && position > d->progress_first
                           ? double(position - d->progress_first) / GST_SECOND : 0.0;
  const double percent = GST_CLOCK_TIME_IS_VALID(duration) ? MIN(100.0, 100.0 * position / duration) : -1.0;
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self),
      gst_structure_new("personaplex-progress", "position", G_TYPE_UINT64, guint64(position),
                        "duration", G_TYPE_UINT64, guint64(duration), "percent", G_TYPE_DOUBLE, percent,
                        "elapsed", G_TYPE_DOUBLE, elapsed, "realtime-factor", G_TYPE_DOUBLE,
                        elapsed > 0 ? media / elapsed : 0.0, "final", G_TYPE_BOOLEAN, final, nullptr)));
}

// The buffer as F32LE samples, timestamps kept.
static GstBuffer *as_f32(GstPersonaPlex *self, GstBuffer *buffer) {
  if (self->duplex->in_format == GST_AUDIO_FORMAT_F32LE) return buffer;
  std::vector<float> samples;
  pcm_append_floats(buffer, self->duplex->in_format, &samples);
  GstBuffer *f32 = pcm_buffer_from_floats(samples.data(), samples.size(), GST_AUDIO_FORMAT_F32LE);
  gst_buffer_copy_into(f32, buffer, GST_BUFFER_COPY_METADATA, 0, -1);
  gst_buffer_unref(buffer);
  return f32;
}

GstFlowReturn chain_offline(GstPersonaPlex *self, GstBuffer *buffer) {
  Duplex *d = self->duplex;
  const gint bpf = d->in_format == GST_AUDIO_FORMAT_S16LE ? 2 : 4;
  buffer = gst_audio_buffer_clip(buffer, &d->segment, kRate, bpf);
  if (!buffer) return GST_FLOW_OK;  // outside the segment
  if (GST_BUFFER_IS_DISCONT(buffer)) d->discont = true;
  gst_adapter_push(d->adapter, as_f32(self, buffer));
  GstFlowReturn ret = GST_FLOW_OK;
  while (ret == GST_FLOW_OK && gst_adapter_available(d->adapter) >= d->frame * sizeof(float))
    ret = offline_frame(self, d->frame);
  return ret;
}

// A GAP in the input is silence the conversation hears, one frame at a time.
GstFlowReturn gap_offline(GstPersonaPlex *self, GstEvent *event) {
  Duplex *d = self->duplex;
  GstClockTime pts, duration;
  gst_event_parse_gap(event, &pts, &duration);
  if (!GST_CLOCK_TIME_IS_VALID(pts) || !GST_CLOCK_TIME_IS_VALID(duration)) return GST_FLOW_OK;
  const guint64 total = gst_util_uint64_scale_round(duration, kRate, GST_SECOND);
  const std::vector<float> zeros(d->frame, 0.0f);
  GstFlowReturn ret = GST_FLOW_OK;
  for (guint64 done = 0; ret == GST_FLOW_OK && done < total; done += d->frame) {
    const size_t n = size_t(MIN(guint64(d->frame), total - done));
    GstBuffer *buffer = pcm_buffer_from_floats(zeros.data(), n, d->in_format);
    GST_BUFFER_PTS(buffer) = pts + samples_duration(self, done);
    GST_BUFFER_DURATION(buffer) = samples_duration(self, n);
    ret = chain_offline(self, buffer);
  }
  return ret;
}

// EOS: the partial frame, zero-padded, then EOS on both pads.
void drain_offline(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  const size_t rest = gst_adapter_available(d->adapter) / sizeof(float);
  if (rest > 0 && d->session) offline_frame(self, rest);
  gst_adapter_clear(d->adapter);
  post_stats(self, true);
  if (d->progress_started && GST_CLOCK_TIME_IS_VALID(d->next_pts)) post_progress(self, d->next_pts, true);
  d->output->push_eos();
}


}  // namespace gstpersonaplex
