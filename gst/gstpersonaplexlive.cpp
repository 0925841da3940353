// The personaplex element live (a live upstream, or is-live): a task on the
// src pad steps the model once per frame of the pipeline clock, on a frame
// grid anchored at the start (and at a shared batch's phase), feeding
// silence when input is missing and skipping frames it cannot make in time.
#include <algorithm>
#include <mutex>
#include <vector>

#include "gstpcmsamples.h"
#include "gstpersonaplexprivate.h"

#define GST_CAT_DEFAULT gst_personaplex_debug

namespace gstpersonaplex {

static void live_loop(GstPersonaPlex *self);

void start_task_if_playing(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  {
    std::lock_guard<std::mutex> lock(d->lock);
    if (!d->playing || d->flushing) return;
  }
  GST_DEBUG_OBJECT(self, "starting the live task");
  gst_pad_start_task(self->srcpad, reinterpret_cast<GstTaskFunction>(live_loop), self, nullptr);
}

// Wakes the task from its clock wait (pause, flush, stop).
static void unschedule_locked(Duplex *d) {
  if (d->clock_id) gst_clock_id_unschedule(d->clock_id);
  d->changed.notify_all();
}

void set_playing(GstPersonaPlex *self, bool playing) {
  Duplex *d = self->duplex;
  std::lock_guard<std::mutex> lock(d->lock);
  d->playing = playing;
  unschedule_locked(d);
}

void set_flushing(GstPersonaPlex *self, bool flushing) {
  Duplex *d = self->duplex;
  d->queue.set_flushing(flushing);
  std::lock_guard<std::mutex> lock(d->lock);
  d->flushing = flushing;
  unschedule_locked(d);
}

// Whether upstream is live (and the mode, when not decided yet), once per
// start. A live source may answer only once it has caps: unless `final` (data
// flows), no answer leaves it undecided.
Mode probe_upstream(GstPersonaPlex *self, bool final) {
  Duplex *d = self->duplex;
  if (d->upstream_probed) return d->mode;
  gboolean live = FALSE;
  GstQuery *query = gst_query_new_latency();
  const bool answered = gst_pad_peer_query(self->sinkpad, query);
  if (answered) gst_query_parse_latency(query, &live, nullptr, nullptr);
  gst_query_unref(query);
  if (!answered && !final) return d->mode;
  if (!d->upstream_probed.exchange(true)) {
    d->upstream_live = live;
    Mode undecided = Mode::kUndecided;
    if (d->mode.compare_exchange_strong(undecided, live ? Mode::kLive : Mode::kOffline))
      GST_INFO_OBJECT(self, "upstream is %slive: %s mode", live ? "" : "not ", live ? "live" : "offline");
    if (d->mode == Mode::kLive) start_task_if_playing(self);
  }
  return d->mode;
}

GstFlowReturn chain_live(GstPersonaPlex *self, GstBuffer *buffer) {
  Duplex *d = self->duplex;
  std::vector<float> samples;
  pcm_append_floats(buffer, d->in_format, &samples);
  gst_buffer_unref(buffer);
  const GstFlowReturn task = d->task_flow;
  if (task != GST_FLOW_OK) return task;
  uint64_t dropped = 0;
  // A live upstream that runs ahead loses its oldest frames; a non-live one waits.
  if (!d->queue.push(samples.data(), samples.size(), d->upstream_live, &dropped)) return GST_FLOW_FLUSHING;
  d->dropped += dropped;
  return GST_FLOW_OK;
}

static void query_upstream_latency(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  gboolean live = FALSE;
  GstClockTime min = 0;
  GstQuery *query = gst_query_new_latency();
  if (gst_pad_peer_query(self->sinkpad, query)) gst_query_parse_latency(query, &live, &min, nullptr);
  gst_query_unref(query);
  d->upstream_latency = live && GST_CLOCK_TIME_IS_VALID(min) ? min : 0;
}

static bool wait_playing(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  std::unique_lock<std::mutex> lock(d->lock);
  d->changed.wait(lock, [d] { return d->playing || d->flushing; });
  return !d->flushing;
}

// In a shared batch, frame grids start on the batch's phase (a clock time
// plus whole frames), so that its elements submit their steps together:
// how long after `start` (a clock time) that is.
static GstClockTime batch_phase_delay(GstPersonaPlex *self, GstClockTime start) {
  Duplex *d = self->duplex;
  const auto &batch = d->session ? d->session->batch() : nullptr;
  if (!batch || !d->frame_duration) return 0;
  const gint64 phase = batch->phase(gint64(start));
  const gint64 frame = gint64(d->frame_duration);
  return GstClockTime(((phase - gint64(start)) % frame + frame) % frame);
}

// Slot 0 of the output timeline starts at the running time of now (0
// without a clock); the output gets a segment of its own, in running time.
static void anchor_grid(GstPersonaPlex *self, GstClock *clock) {
  Duplex *d = self->duplex;
  if (d->grid_started) return;
  d->grid_start = 0;
  if (clock) {
    const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
    const GstClockTime now = gst_clock_get_time(clock);
    d->grid_start = now > base ? now - base : 0;
    d->grid_start += batch_phase_delay(self, base + d->grid_start);
  }
  d->slot = 0;
  d->grid_started = true;
  d->live_discont = true;
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  d->output->set_segment(segment);
  GST_DEBUG_OBJECT(self, "live timeline starts at %" GST_TIME_FORMAT, GST_TIME_ARGS(d->grid_start));
}

// Waits until the input of the current slot is due: the slot's end plus the
// upstream latency. *wake gets that clock time; false when woken early.
static bool wait_for_slot(GstPersonaPlex *self, GstClock *clock, GstClockTime *wake) {
  Duplex *d = self->duplex;
  const GstClockTime base = gst_element_get_base_time(GST_ELEMENT(self));
  if (d->requery_latency.exchange(false)) query_upstream_latency(self);
  anchor_grid(self, clock);
  *wake = base + d->grid_start + (d->slot + 1) * d->frame_duration + d->upstream_latency;
  GstClockID id = gst_clock_new_single_shot_id(clock, *wake);
  {
    std::lock_guard<std::mutex> lock(d->lock);
    if (d->flushing || !d->playing) {
      gst_clock_id_unref(id);
      return false;
    }
    d->clock_id = id;
  }
  const GstClockReturn res = gst_clock_id_wait(id, nullptr);
  {
    std::lock_guard<std::mutex> lock(d->lock);
    d->clock_id = nullptr;
  }
  gst_clock_id_unref(id);
  return res != GST_CLOCK_UNSCHEDULED;
}

static void warn_late(GstPersonaPlex *self, const char *what, GstClockTime late_by) {
  if (!self->duplex->stats.record_late(g_get_monotonic_time())) return;
  GST_ELEMENT_WARNING(self, CORE, CLOCK, ("Falling behind real time: %s", what),
                      ("%" GST_TIME_FORMAT " after the deadline (latency budget %" GST_TIME_FORMAT ")",
                       GST_TIME_ARGS(late_by), GST_TIME_ARGS(budget_of(self))));
}

// How long after its wake-up a slot's output may still come out in time: the
// compute budget, or more when downstream adds latency (the pipeline renders
// a frame at its time plus the whole pipeline's latency, and a push into a
// syncing sink blocks until then: that wait is pacing, not lateness).
static GstClockTime slack_of(GstPersonaPlex *self, GstClockTime budget) {
  Duplex *d = self->duplex;
  const GstClockTime total = d->pipeline_latency;
  const GstClockTime before_wake = d->frame_duration + d->upstream_latency;
  if (!GST_CLOCK_TIME_IS_VALID(total) || total <= before_wake) return budget;
  return std::max(budget, total - before_wake);
}

// When the clock is already past the slot's deadline, skips the slots that
// cannot be made in time (a GAP on both pads, their input dropped).
static bool skip_if_behind(GstPersonaPlex *self, GstClock *clock, GstClockTime wake, GstClockTime budget) {
  Duplex *d = self->duplex;
  budget = slack_of(self, budget);
  const GstClockTime now = gst_clock_get_time(clock);
  if (now <= wake + budget) return false;
  const guint64 n = (now - wake - budget + d->frame_duration - 1) / d->frame_duration;
  const GstClockTime pts = d->grid_start + d->slot * d->frame_duration;
  d->output->push_gap(pts, n * d->frame_duration);
  d->stats.record_dropped(d->queue.drop(n));
  d->stats.record_skipped(n);
  d->stats.set_behind(n);
  d->slot += n;
  d->live_discont = true;
  warn_late(self, "frames skipped", now - wake - budget);
  return true;
}

static void check_deadline(GstPersonaPlex *self, GstClock *clock, GstClockTime wake, GstClockTime budget) {
  Duplex *d = self->duplex;
  const GstClockTime done = gst_clock_get_time(clock);
  d->stats.set_behind(done > wake ? (done - wake) / d->frame_duration : 0);
  if (done > wake + budget)
    warn_late(self, "a step overran its budget", done - wake - budget);
  else
    d->stats.record_on_time();
}

static void pause_task(GstPersonaPlex *self, GstFlowReturn ret) {
  Duplex *d = self->duplex;
  d->task_flow = ret;
  GST_DEBUG_OBJECT(self, "pausing the live task: %s", gst_flow_get_name(ret));
  gst_pad_pause_task(self->srcpad);
  if (ret == GST_FLOW_NOT_LINKED || ret < GST_FLOW_EOS) {
    GST_ELEMENT_FLOW_ERROR(self, ret);
    d->output->push_eos();
  }
}

// The input of this slot: a queued frame, else silence. false at EOS (sent)
// or when flushing.
static bool take_input(GstPersonaPlex *self, size_t *real) {
  Duplex *d = self->duplex;
  switch (d->queue.take(&d->live_frame, real)) {
    case FrameQueue::Take::kFrame:
      return true;
    case FrameQueue::Take::kEmpty:
      d->live_frame.assign(d->frame, 0.0f);
      *real = d->frame;
      d->stats.record_silence();
      return true;
    case FrameQueue::Take::kEos:
      post_stats(self, true);
      d->output->push_eos();
      pause_task(self, GST_FLOW_EOS);
      return false;
    case FrameQueue::Take::kFlushing:
    default:
      return false;
  }
}

static void live_loop(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  if (!wait_playing(self)) {
    gst_pad_pause_task(self->srcpad);
    return;
  }
  const GstClockTime budget = budget_of(self);
  GstClock *clock = gst_element_get_clock(GST_ELEMENT(self));
  GstClockTime wake = 0;
  if (!clock) {
    anchor_grid(self, nullptr);
    d->queue.wait_for_frame();  // nothing to pace by: the input does
  } else if (!wait_for_slot(self, clock, &wake) || skip_if_behind(self, clock, wake, budget)) {
    gst_object_unref(clock);
    return;
  }
  size_t real = 0;
  if (take_input(self, &real)) {
    d->stats.record_dropped(d->dropped.exchange(0));
    const GstClockTime pts = d->grid_start + d->slot * d->frame_duration;
    personaplex::duplex::FrameResult r;
    GstFlowReturn ret = GST_FLOW_ERROR;
    if (compute_step(self, d->live_frame.data(), real, pts, &r)) {
      // Judged when the output is ready: the push may then wait on a syncing
      // sink downstream, which is pacing, not lateness.
      if (clock) check_deadline(self, clock, wake, budget);
      ret = push_step(self, r, real, pts, d->live_discont);
    }
    d->live_discont = false;
    d->slot++;
    if (ret != GST_FLOW_OK) pause_task(self, ret);
  }
  if (clock) gst_object_unref(clock);
}

}  // namespace gstpersonaplex
