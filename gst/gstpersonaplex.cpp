/**
 * SECTION:element-personaplex
 * @title: personaplex
 * @see_also: mimienc, mimidec
 *
 * A full-duplex spoken conversation with NVIDIA PersonaPlex: the user's
 * speech comes in on the `sink` pad (24 kHz mono), the model's speech goes
 * out on `src` (same caps family) and its words on `text_src` (one
 * `text/x-raw, format=utf8` buffer per word, timestamped with the audio frame
 * that spoke it; GAP events for frames without a word). Every 80 ms frame of
 * input gives one 80 ms frame of output. A `personaplex-word` element message
 * accompanies each word, and a `personaplex-stats` message reports the step
 * times about once per second.
 *
 * The model is loaded, and the prompts (voice, then role text) run, when the
 * element goes from READY to PAUSED, so the first output frame already is
 * the conversation's. The `reset` action signal and a flush restart the
 * conversation (prompts again) before the next frame; `prompt`, `voice`,
 * `seed` and the sampling properties changed while playing apply then.
 *
 * With a non-live upstream (files) the element runs as fast as the device
 * allows and its output has the input's timestamps and length. With a live
 * upstream, or `is-live=true`, a task paced by the pipeline clock steps the
 * model once per frame, feeding silence when input is missing (also before
 * the sink pad is linked), and reports one frame plus the `latency` budget of
 * latency.
 *
 * Elements of one process naming the same files and device share one loaded
 * model; each runs its own conversation.
 *
 * Like a demuxer, the element pushes both source pads from one thread: when
 * both lead to sinks, put a queue on each branch so that one sink waiting for
 * preroll does not hold the other back.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=question.wav ! wavparse ! audioconvert ! audioresample ! \
 *     personaplex name=talk model-dir=personaplex-7b-v1 voice=NATF2 \
 *         prompt="You are a friendly teacher." \
 *     talk.src ! queue ! audioconvert ! wavenc ! filesink location=answer.wav \
 *     talk.text_src ! queue ! fakesink dump=true
 * ]| Answers a recorded question: `answer.wav` has the length of `question.wav`.
 * |[
 * gst-launch-1.0 pulsesrc ! audioconvert ! audioresample ! \
 *     personaplex model-dir=personaplex-7b-v1 voice=NATM1 ! audioconvert ! pulsesink
 * ]| A live conversation through the microphone and speakers.
 */
#include "gstpersonaplex.h"

#include <gst/audio/audio.h>
#include <gst/base/gstadapter.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "duplex/duplex_model.h"
#include "duplex/session.h"
#include "gstduplexoutput.h"
#include "gstframequeue.h"
#include "gstpcmsamples.h"
#include "gstpersonaplexsettings.h"
#include "gststepstats.h"

// Not static: gstduplexoutput.cpp logs in it too.
GST_DEBUG_CATEGORY(gst_personaplex_debug);
#define GST_CAT_DEFAULT gst_personaplex_debug

using personaplex::duplex::DuplexModel;
using personaplex::duplex::Session;
using namespace gstpersonaplex;

namespace {

constexpr gint kRate = 24000;

enum class Mode { kUndecided, kOffline, kLive };

// The element's state beyond its settings.
struct Duplex {
  Duplex() : adapter(gst_adapter_new()) { gst_segment_init(&segment, GST_FORMAT_TIME); }
  ~Duplex() { g_object_unref(adapter); }

  // Set up in start(); the session is used by one streaming thread at a time
  // (the sink pad's offline, the task live).
  std::shared_ptr<const DuplexModel> model;
  // Like the model, the shared batch stays until NULL (its memory and CUDA
  // graphs are costly to make again for the next conversation).
  std::shared_ptr<personaplex::serving::LockstepBatch> batch;
  std::string voices_dir;
  std::unique_ptr<Session> session;
  size_t frame = 1920;
  GstClockTime frame_duration = 80 * GST_MSECOND;
  guint64 frames_per_stats = 13;
  std::unique_ptr<DuplexOutput> output;
  StepStats stats;
  std::atomic<bool> reset_pending{false};
  std::atomic<Mode> mode{Mode::kUndecided};
  std::atomic<bool> upstream_probed{false};
  std::atomic<bool> upstream_live{false};

  // Sink side, under the sink pad's stream lock.
  bool have_caps = false;
  GstAudioFormat in_format = GST_AUDIO_FORMAT_F32LE;
  GstSegment segment;
  GstAdapter *adapter;  // offline: F32LE samples of the frame being filled
  GstClockTime next_pts = GST_CLOCK_TIME_NONE;
  bool discont = true;
  std::vector<float> scratch;

  // Live: input waiting for the task, and the task's pacing.
  FrameQueue queue;
  std::atomic<uint64_t> dropped{0};
  std::atomic<GstFlowReturn> task_flow{GST_FLOW_OK};
  std::atomic<bool> requery_latency{true};
  std::mutex lock;  // guards the three below
  std::condition_variable changed;
  GstClockID clock_id = nullptr;
  bool playing = false;
  bool flushing = true;
  // The task's own (the task is stopped whenever others touch them).
  bool grid_started = false;
  GstClockTime grid_start = 0;  // running time of slot 0
  guint64 slot = 0;
  GstClockTime upstream_latency = 0;
  // The whole pipeline's latency, from the LATENCY event (NONE until then).
  std::atomic<GstClockTime> pipeline_latency{GST_CLOCK_TIME_NONE};
  bool live_discont = true;
  std::vector<float> live_frame;
  guint32 last_seek_seqnum = GST_SEQNUM_INVALID;
};

}  // namespace

struct _GstPersonaPlex {
  GstElement parent;
  GstPad *sinkpad, *srcpad, *textpad;
  DuplexSettings *settings;  // guarded by the object lock
  Duplex *duplex;
};

G_DEFINE_TYPE(GstPersonaPlex, gst_personaplex, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(personaplex, "personaplex", GST_RANK_NONE, GST_TYPE_PERSONAPLEX);

#define PCM_CAPS                                                                         \
  "audio/x-raw, format = (string) { F32LE, S16LE }, rate = (int) 24000, "                \
  "channels = (int) 1, layout = (string) interleaved"

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(PCM_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(PCM_CAPS));
static GstStaticPadTemplate text_template = GST_STATIC_PAD_TEMPLATE("text_src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

enum { SIGNAL_RESET, LAST_SIGNAL };
static guint signals[LAST_SIGNAL];

static GstClockTime budget_of(GstPersonaPlex *self) {
  GST_OBJECT_LOCK(self);
  const GstClockTime budget = self->settings->latency;
  GST_OBJECT_UNLOCK(self);
  return budget;
}

static GstClockTime samples_duration(GstPersonaPlex *self, size_t samples) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, kRate);
}

// ---------------------------------------------------------------------------
// Model, session and conversation

static bool load_model(GstPersonaPlex *self, const DuplexSettings &s,
                       const personaplex::duplex::ModelFiles &files) {
  Duplex *d = self->duplex;
  const std::string device_name = settings_device(s);
  at::Device device(at::kCPU);
  try {
    device = personaplex::parse_device(device_name);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid device \"%s\": %s", device_name.c_str(), e.what()),
                      (nullptr));
    return false;
  }
  at::ScalarType dtype;
  try {
    dtype = settings_dtype(s, device);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid dtype \"%s\": %s", s.dtype.c_str(), e.what()), (nullptr));
    return false;
  }
  personaplex::nn::WeightFormat format;
  try {
    format = personaplex::nn::parse_weight_format(s.weight_format);
    personaplex::nn::check_weight_format(format, device, dtype);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid weight-format \"%s\": %s", s.weight_format.c_str(),
                      e.what()), (nullptr));
    return false;
  }
  try {
    GST_INFO_OBJECT(self, "loading PersonaPlex from %s on %s in %s (%s weights)", files.lm_weights.c_str(),
                    device.str().c_str(), personaplex::dtype_name(dtype).c_str(),
                    personaplex::nn::weight_format_name(format).c_str());
    d->model = DuplexModel::acquire(files, device, dtype, format);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ, ("Could not load the PersonaPlex model: %s", e.what()),
                      ("LM weights \"%s\", Mimi weights \"%s\", tokenizer \"%s\", device %s",
                       files.lm_weights.c_str(), files.mimi_weights.c_str(), files.tokenizer.c_str(),
                       device.str().c_str()));
    return false;
  }
  return true;
}

// The session options of the current settings; posts the error on failure.
static bool session_options(GstPersonaPlex *self, personaplex::duplex::SessionOptions *options) {
  const DuplexSettings s = settings_copy(GST_ELEMENT(self), self->settings);
  try {
    *options = settings_session_options(s, self->duplex->voices_dir);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid voice: %s", e.what()),
                      ("voice \"%s\", voices directory \"%s\"", s.voice.c_str(),
                       self->duplex->voices_dir.c_str()));
    return false;
  }
  return true;
}

// Runs the prompts of the current settings; posts the error on failure.
static bool start_conversation(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  personaplex::duplex::SessionOptions options;
  if (!session_options(self, &options)) return false;
  // On a GPU the first steps load kernels and capture graphs: done here,
  // before a live clock runs, they cost no frames.
  options.warm_up = d->model->device().is_cuda();
  d->session->set_options(options);
  try {
    d->session->start();
  } catch (const personaplex::BusyError &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, BUSY, ("No free conversation slot in the shared batch: %s", e.what()),
                      ("batch-size %" G_GINT64_FORMAT ": as many elements can run on one model at once",
                       options.batch));
    return false;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, READ, ("Could not run the prompts: %s", e.what()),
                      ("voice file \"%s\"", options.voice_path.c_str()));
    return false;
  }
  if (d->session->batch()) d->batch = d->session->batch();
  GST_DEBUG_OBJECT(self, "conversation started after %" G_GINT64_FORMAT " prompt steps",
                   d->session->prompt_steps());
  return true;
}

static void warn_from_engine(GstPersonaPlex *self, const std::string &message) {
  GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("%s", message.c_str()), (nullptr));
}

static size_t queue_capacity(GstPersonaPlex *self) {
  const Duplex *d = self->duplex;
  return 2 + size_t(budget_of(self) / d->frame_duration);
}

static void reset_stream(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  gst_adapter_clear(d->adapter);
  gst_segment_init(&d->segment, GST_FORMAT_TIME);
  d->have_caps = false;
  d->next_pts = GST_CLOCK_TIME_NONE;
  d->discont = true;
  d->queue.clear();
  d->dropped = 0;
  d->task_flow = GST_FLOW_OK;
  d->requery_latency = true;
  d->grid_started = false;
  d->live_discont = true;
  d->stats.reset();
  d->reset_pending = false;
  d->upstream_probed = false;
  d->upstream_live = false;
  d->last_seek_seqnum = GST_SEQNUM_INVALID;
  d->output->reset();
}

// READY -> PAUSED: files, model, session, prompts.
static bool start(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  const DuplexSettings s = settings_copy(GST_ELEMENT(self), self->settings);
  personaplex::duplex::ModelFiles files;
  try {
    files = personaplex::duplex::resolve_model_files(s.paths);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, NOT_FOUND, ("%s", e.what()),
                      ("set model-dir, or lm-weights, mimi-weights and tokenizer"));
    return false;
  }
  if (!load_model(self, s, files)) return false;
  d->voices_dir = files.voices_dir;
  if (d->model->sample_rate() != kRate) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("The model runs at %" G_GINT64_FORMAT " Hz, not %d Hz",
                      d->model->sample_rate(), kRate), (nullptr));
    return false;
  }
  d->frame = size_t(d->model->frame_size());
  d->frame_duration = samples_duration(self, d->frame);
  d->frames_per_stats = (kRate + d->frame / 2) / d->frame;
  d->queue.configure(d->frame, queue_capacity(self));
  try {
    d->session = std::make_unique<Session>(d->model, personaplex::duplex::SessionOptions{},
        [self](const std::string &m) { warn_from_engine(self, m); });
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, FAILED, ("Could not set up a conversation: %s", e.what()), (nullptr));
    return false;
  }
  reset_stream(self);
  d->output->set_rate(kRate);
  if (!start_conversation(self)) {
    d->session.reset();
    return false;
  }
  d->mode = s.is_live ? Mode::kLive : Mode::kUndecided;
  return true;
}

// PAUSED -> READY, after the pads are deactivated (the task is stopped).
static void stop(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  gst_pad_stop_task(self->srcpad);
  d->session.reset();
  reset_stream(self);
  d->mode = Mode::kUndecided;
}

static void post_stats(GstPersonaPlex *self, bool force) {
  Duplex *d = self->duplex;
  if (!d->stats.message_due(force ? 1 : d->frames_per_stats)) return;
  GstStructure *s = d->stats.take_message(d->frame_duration, d->mode == Mode::kLive);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// Runs the model on one frame of input (`real` samples, the rest zero);
// false after posting an error.
static bool compute_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
                         personaplex::duplex::FrameResult *r) {
  Duplex *d = self->duplex;
  if (d->reset_pending.exchange(false) && !start_conversation(self)) return false;
  const gint64 begin = g_get_monotonic_time();
  try {
    *r = d->session->process(pcm, real);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("PersonaPlex step failed: %s", e.what()),
                      ("frame at %" GST_TIME_FORMAT, GST_TIME_ARGS(pts)));
    return false;
  }
  d->stats.record_step((g_get_monotonic_time() - begin) / 1000.0);
  return true;
}

// Pushes a computed frame: `real` samples of audio at `pts` and its word.
static GstFlowReturn push_step(GstPersonaPlex *self, personaplex::duplex::FrameResult &r, size_t real,
                               GstClockTime pts, bool discont) {
  Duplex *d = self->duplex;
  DuplexOutput::Frame f;
  f.pcm = r.pcm.data();
  f.samples = real;
  f.pts = pts;
  f.duration = samples_duration(self, real);
  f.text = std::move(r.text);
  f.step = r.step;
  f.discont = discont;
  GstFlowReturn ret = d->output->push(f);
  post_stats(self, false);
  return ret;
}

// One conversation step: `real` samples of input give as many samples of
// output at `pts`, and the frame's word.
static GstFlowReturn run_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
                              bool discont) {
  personaplex::duplex::FrameResult r;
  if (!compute_step(self, pcm, real, pts, &r)) return GST_FLOW_ERROR;
  return push_step(self, r, real, pts, discont);
}

static void reset_conversation(GstPersonaPlex *self) {
  GST_DEBUG_OBJECT(self, "conversation reset requested");
  self->duplex->reset_pending = true;
}

// ---------------------------------------------------------------------------
// Offline: one step per complete input frame, in the sink pad's thread

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
  return ret;
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

static GstFlowReturn chain_offline(GstPersonaPlex *self, GstBuffer *buffer) {
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
static GstFlowReturn gap_offline(GstPersonaPlex *self, GstEvent *event) {
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
static void drain_offline(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  const size_t rest = gst_adapter_available(d->adapter) / sizeof(float);
  if (rest > 0 && d->session) offline_frame(self, rest);
  gst_adapter_clear(d->adapter);
  post_stats(self, true);
  d->output->push_eos();
}

// ---------------------------------------------------------------------------
// Live: a task on the src pad, one step per frame of the pipeline clock

static void live_loop(GstPersonaPlex *self);

static void start_task_if_playing(GstPersonaPlex *self) {
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

static void set_playing(GstPersonaPlex *self, bool playing) {
  Duplex *d = self->duplex;
  std::lock_guard<std::mutex> lock(d->lock);
  d->playing = playing;
  unschedule_locked(d);
}

static void set_flushing(GstPersonaPlex *self, bool flushing) {
  Duplex *d = self->duplex;
  d->queue.set_flushing(flushing);
  std::lock_guard<std::mutex> lock(d->lock);
  d->flushing = flushing;
  unschedule_locked(d);
}

// Whether upstream is live (and the mode, when not decided yet), once per
// start. A live source may answer only once it has caps: unless `final` (data
// flows), no answer leaves it undecided.
static Mode probe_upstream(GstPersonaPlex *self, bool final = true) {
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

static GstFlowReturn chain_live(GstPersonaPlex *self, GstBuffer *buffer) {
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

// ---------------------------------------------------------------------------
// Pads

static GstFlowReturn gst_personaplex_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  GstPersonaPlex *self = GST_PERSONAPLEX(parent);
  Duplex *d = self->duplex;
  if (!d->have_caps) {
    gst_buffer_unref(buffer);
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("No caps before the first buffer"), (nullptr));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (probe_upstream(self) == Mode::kLive) return chain_live(self, buffer);
  return chain_offline(self, buffer);
}

static gboolean set_input_caps(GstPersonaPlex *self, GstCaps *caps) {
  Duplex *d = self->duplex;
  GstAudioInfo info;
  if (!gst_audio_info_from_caps(&info, caps) || GST_AUDIO_INFO_RATE(&info) != kRate ||
      GST_AUDIO_INFO_CHANNELS(&info) != 1) {
    GST_WARNING_OBJECT(self, "refusing caps %" GST_PTR_FORMAT, caps);
    return FALSE;
  }
  d->in_format = GST_AUDIO_INFO_FORMAT(&info);
  d->have_caps = true;
  d->output->set_preferred_format(d->in_format);
  return TRUE;
}

static void flush_start(GstPersonaPlex *self, GstEvent *event) {
  set_flushing(self, true);
  self->duplex->output->push_flush(event);
  if (self->duplex->mode == Mode::kLive) gst_pad_pause_task(self->srcpad);
}

// After a flush the conversation starts again, with the settings of now.
static void flush_stop(GstPersonaPlex *self, GstEvent *event) {
  Duplex *d = self->duplex;
  d->queue.clear();
  set_flushing(self, false);
  gst_adapter_clear(d->adapter);
  d->next_pts = GST_CLOCK_TIME_NONE;
  d->discont = true;
  d->grid_started = false;
  d->task_flow = GST_FLOW_OK;
  d->reset_pending = true;
  d->output->push_flush(event);
  if (d->mode == Mode::kLive) start_task_if_playing(self);
}

static gboolean on_eos(GstPersonaPlex *self) {
  if (probe_upstream(self) == Mode::kLive)
    self->duplex->queue.mark_eos();  // the task sends EOS once the queue is drained
  else
    drain_offline(self);
  return TRUE;
}

static gboolean gst_personaplex_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  GstPersonaPlex *self = GST_PERSONAPLEX(parent);
  Duplex *d = self->duplex;
  GST_LOG_OBJECT(self, "sink event %" GST_PTR_FORMAT, event);
  gboolean ret = TRUE;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps(event, &caps);
      ret = set_input_caps(self, caps);
      break;
    }
    case GST_EVENT_STREAM_START:
      if (d->mode != Mode::kLive) d->output->set_stream_start(event);
      break;
    case GST_EVENT_SEGMENT:
      gst_event_copy_segment(event, &d->segment);
      if (d->segment.format != GST_FORMAT_TIME) {
        GST_ELEMENT_ERROR(self, STREAM, FORMAT, ("Only TIME segments are supported"), (nullptr));
        ret = FALSE;
      } else if (d->mode != Mode::kLive) {
        d->output->set_segment(d->segment);  // live output has its own timeline
      }
      break;
    case GST_EVENT_FLUSH_START:
      flush_start(self, event);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      flush_stop(self, event);
      return TRUE;
    case GST_EVENT_EOS:
      ret = on_eos(self);
      break;
    case GST_EVENT_GAP:
      // Live: missing input is silence anyway.
      if (d->have_caps && probe_upstream(self) != Mode::kLive) ret = gap_offline(self, event) == GST_FLOW_OK;
      break;
    default:
      return gst_pad_event_default(pad, parent, event);
  }
  gst_event_unref(event);
  return ret;
}

static gboolean gst_personaplex_src_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  GstPersonaPlex *self = GST_PERSONAPLEX(parent);
  Duplex *d = self->duplex;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_LATENCY: {
      GstClockTime latency = GST_CLOCK_TIME_NONE;
      gst_event_parse_latency(event, &latency);
      d->pipeline_latency = latency;
      d->requery_latency = true;
      break;
    }
    case GST_EVENT_SEEK: {
      // Sinks on both source pads send the same seek: forward it once.
      const guint32 seqnum = gst_event_get_seqnum(event);
      GST_OBJECT_LOCK(self);
      const bool again = seqnum == d->last_seek_seqnum;
      d->last_seek_seqnum = seqnum;
      GST_OBJECT_UNLOCK(self);
      if (again) {
        gst_event_unref(event);
        return TRUE;
      }
      return gst_pad_push_event(self->sinkpad, event);
    }
    default:
      break;
  }
  return gst_pad_event_default(pad, parent, event);
}

// Own latency: the frame being collected plus the compute budget.
static void own_latency(GstPersonaPlex *self, GstClockTime *min, GstClockTime *max) {
  const Duplex *d = self->duplex;
  const GstClockTime budget = budget_of(self);
  *min = d->frame_duration + budget;
  *max = *min + d->frame_duration * (queue_capacity(self) - 1);
}

static bool is_live(GstPersonaPlex *self) {
  if (self->duplex->mode == Mode::kLive) return true;
  GST_OBJECT_LOCK(self);
  const bool live = self->settings->is_live;
  GST_OBJECT_UNLOCK(self);
  return live;
}

static gboolean src_latency(GstPersonaPlex *self, GstQuery *query) {
  gboolean up_live = FALSE;
  GstClockTime min = 0, max = GST_CLOCK_TIME_NONE, own_min, own_max;
  GstQuery *upstream = gst_query_new_latency();
  if (gst_pad_peer_query(self->sinkpad, upstream)) gst_query_parse_latency(upstream, &up_live, &min, &max);
  gst_query_unref(upstream);
  if (!up_live && !is_live(self)) {
    gst_query_set_latency(query, FALSE, min, max);
    return TRUE;
  }
  own_latency(self, &own_min, &own_max);
  if (!up_live) min = 0, max = 0;
  gst_query_set_latency(query, TRUE, min + own_min, GST_CLOCK_TIME_IS_VALID(max) ? max + own_max : max);
  GST_DEBUG_OBJECT(self, "latency query answered: %" GST_PTR_FORMAT, query);
  return TRUE;
}

static gboolean gst_personaplex_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) return src_latency(GST_PERSONAPLEX(parent), query);
  return gst_pad_query_default(pad, parent, query);
}

static gboolean gst_personaplex_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  GstPersonaPlex *self = GST_PERSONAPLEX(parent);
  // Input buffers are read, never passed on: downstream's pools do not apply.
  if (GST_QUERY_TYPE(query) == GST_QUERY_ALLOCATION) return FALSE;
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    GstClockTime min, max;
    own_latency(self, &min, &max);
    gst_query_set_latency(query, is_live(self), min, max);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

static gboolean gst_personaplex_src_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode,
                                                  gboolean active) {
  GstPersonaPlex *self = GST_PERSONAPLEX(parent);
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  set_flushing(self, !active);
  if (!active) gst_pad_stop_task(pad);
  return TRUE;
}

static gboolean gst_personaplex_sink_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode,
                                                   gboolean active) {
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  // A chain waiting for room in the live queue must return.
  if (!active) GST_PERSONAPLEX(parent)->duplex->queue.set_flushing(true);
  return TRUE;
}

// ---------------------------------------------------------------------------
// Element

static GstStateChangeReturn gst_personaplex_change_state(GstElement *element, GstStateChange transition) {
  GstPersonaPlex *self = GST_PERSONAPLEX(element);
  Duplex *d = self->duplex;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!start(self)) return GST_STATE_CHANGE_FAILURE;
      break;
    case GST_STATE_CHANGE_PAUSED_TO_PLAYING:
      set_playing(self, true);
      if (d->mode == Mode::kLive)
        start_task_if_playing(self);
      else if (gst_pad_is_linked(self->sinkpad))
        probe_upstream(self, false);  // a live upstream: speak before its first buffer
      break;
    case GST_STATE_CHANGE_PLAYING_TO_PAUSED:
      set_playing(self, false);
      break;
    default:
      break;
  }
  GstStateChangeReturn ret = GST_ELEMENT_CLASS(gst_personaplex_parent_class)->change_state(element, transition);
  if (ret == GST_STATE_CHANGE_FAILURE) {
    if (transition == GST_STATE_CHANGE_READY_TO_PAUSED) stop(self);
    return ret;
  }
  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      stop(self);
      break;
    case GST_STATE_CHANGE_READY_TO_NULL:
      d->batch.reset();
      d->model.reset();
      break;
    default:
      break;
  }
  const bool live_source = is_live(self);
  if (live_source && (transition == GST_STATE_CHANGE_READY_TO_PAUSED ||
                      transition == GST_STATE_CHANGE_PLAYING_TO_PAUSED))
    ret = GST_STATE_CHANGE_NO_PREROLL;
  return ret;
}

static void gst_personaplex_set_property(GObject *object, guint id, const GValue *value, GParamSpec *pspec) {
  GstPersonaPlex *self = GST_PERSONAPLEX(object);
  if (!settings_set_property(GST_ELEMENT(self), self->settings, id, value, pspec)) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
    return;
  }
  if (id == DUPLEX_PROP_LATENCY) {
    self->duplex->queue.configure(self->duplex->frame, queue_capacity(self));
    gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
  }
}

static void gst_personaplex_get_property(GObject *object, guint id, GValue *value, GParamSpec *pspec) {
  GstPersonaPlex *self = GST_PERSONAPLEX(object);
  if (!settings_get_property(GST_ELEMENT(self), self->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
}

static void gst_personaplex_finalize(GObject *object) {
  GstPersonaPlex *self = GST_PERSONAPLEX(object);
  delete self->duplex;
  delete self->settings;
  G_OBJECT_CLASS(gst_personaplex_parent_class)->finalize(object);
}

static void gst_personaplex_class_init(GstPersonaPlexClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GST_DEBUG_CATEGORY_INIT(gst_personaplex_debug, "personaplex", 0, "PersonaPlex full-duplex conversation");

  gobject_class->set_property = gst_personaplex_set_property;
  gobject_class->get_property = gst_personaplex_get_property;
  gobject_class->finalize = gst_personaplex_finalize;
  settings_install_properties(gobject_class);

  /**
   * GstPersonaPlex::reset:
   *
   * Restarts the conversation (prompts again, with the current `prompt`,
   * `voice`, `seed` and sampling properties) before the next frame.
   */
  signals[SIGNAL_RESET] = g_signal_new_class_handler("reset", G_TYPE_FROM_CLASS(klass),
      static_cast<GSignalFlags>(G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION), G_CALLBACK(reset_conversation),
      nullptr, nullptr, nullptr, G_TYPE_NONE, 0);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_add_static_pad_template(element_class, &text_template);
  gst_element_class_set_static_metadata(element_class, "PersonaPlex full-duplex conversation",
      "Filter/Audio/Text",
      "Talks with the user in real time: user speech in, the model's speech and words out "
      "(NVIDIA PersonaPlex)",
      "gst-personaplex developers");
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_personaplex_change_state);
}

static void gst_personaplex_init(GstPersonaPlex *self) {
  self->settings = new DuplexSettings();
  self->duplex = new Duplex();

  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_personaplex_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_personaplex_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_personaplex_sink_query));
  gst_pad_set_activatemode_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_personaplex_sink_activate_mode));
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  self->textpad = gst_pad_new_from_static_template(&text_template, "text_src");
  for (GstPad *pad : {self->srcpad, self->textpad}) {
    gst_pad_set_event_function(pad, GST_DEBUG_FUNCPTR(gst_personaplex_src_event));
    gst_pad_set_query_function(pad, GST_DEBUG_FUNCPTR(gst_personaplex_src_query));
    gst_pad_use_fixed_caps(pad);
    gst_element_add_pad(GST_ELEMENT(self), pad);
  }
  gst_pad_set_activatemode_function(self->srcpad, GST_DEBUG_FUNCPTR(gst_personaplex_src_activate_mode));
  self->duplex->output = std::make_unique<DuplexOutput>(GST_ELEMENT(self), self->srcpad, self->textpad);
}
