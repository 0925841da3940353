// The personaplex element's model and conversation: loading, the prompts,
// start and stop, and the step both modes take (compute, then push through
// DuplexOutput).
#include <exception>

#include "core/device.h"
#include "core/error.h"
#include "gstdevicename.h"
#include "gstpersonaplexprivate.h"

#define GST_CAT_DEFAULT gst_personaplex_debug

using personaplex::duplex::DuplexModel;
using personaplex::duplex::Session;

namespace gstpersonaplex {

GstClockTime budget_of(GstPersonaPlex *self) {
  GST_OBJECT_LOCK(self);
  const GstClockTime budget = self->settings->latency;
  GST_OBJECT_UNLOCK(self);
  return budget;
}

GstClockTime samples_duration(GstPersonaPlex *self, size_t samples) {
  return gst_util_uint64_scale_int(samples, GST_SECOND, kRate);
}

static bool load_model(GstPersonaPlex *self, const DuplexSettings &s,
                       const personaplex::duplex::ModelFiles &files) {
  Duplex *d = self->duplex;
  if (!device_name_check_on_start(GST_ELEMENT(self), s.device)) return false;
  const std::string device_name = settings_device(s);
  at::Device device(at::kCPU);
  try {
    device = personaplex::parse_device(device_name);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Unusable device \"%s\": %s", device_name.c_str(), e.what()),
                      ("the accepted values are %s", kDeviceValues));
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
  personaplex::lm::KvFormat kv;
  try {
    kv = personaplex::lm::parse_kv_format(s.kv_cache);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid kv-cache \"%s\": %s", s.kv_cache.c_str(), e.what()),
                      (nullptr));
    return false;
  }
  at::ScalarType mimi_dtype;
  try {
    mimi_dtype = settings_mimi_dtype(s);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("Invalid mimi-dtype \"%s\": %s", s.mimi_dtype.c_str(), e.what()),
                      (nullptr));
    return false;
  }
  try {
    GST_INFO_OBJECT(self,
                    "loading PersonaPlex from %s on %s in %s (%s weights, %s KV cache, Mimi in %s, %u layers "
                    "offloaded)",
                    files.lm_weights.c_str(), device.str().c_str(), personaplex::dtype_name(dtype).c_str(),
                    personaplex::nn::weight_format_name(format).c_str(), personaplex::lm::kv_format_name(kv).c_str(),
                    personaplex::dtype_name(mimi_dtype).c_str(), s.offload_layers);
    const auto previous = d->model;
    d->model = DuplexModel::acquire(files, device, {dtype, format, kv, mimi_dtype, int64_t(s.offload_layers)});
    if (d->model == previous) GST_INFO_OBJECT(self, "model kept from the previous start, not loaded again");
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

// The conversation's start for applications (a server's metrics): how long
// its prompts took and what the batch's prompt cache gave it.
static void post_started(GstPersonaPlex *self, int64_t prompt_steps, const personaplex::duplex::StartTimes &t) {
  const char *cache = t.prompts_cached ? "prompts" : t.voice_cached ? "voice" : "none";
  gst_element_post_message(
      GST_ELEMENT(self),
      gst_message_new_element(GST_OBJECT(self), gst_structure_new("personaplex-started", "prompt-steps", G_TYPE_INT64,
                                                                  gint64(prompt_steps), "prompts-ms", G_TYPE_DOUBLE,
                                                                  t.prompts_ms, "from-cache", G_TYPE_STRING, cache,
                                                                  nullptr)));
}

// Runs the prompts of the current settings; posts the error on failure.
static bool start_conversation(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  personaplex::duplex::SessionOptions options;
  if (!session_options(self, &options)) return false;
  if (options.voice_path.empty() && settings_copy(GST_ELEMENT(self), self->settings).voice != "none")
    GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS,
                        ("No voice prompt: the conversation starts without one, in no chosen voice"),
                        ("set 'voice' (a name in the voices directory such as NATF2, or a .pt/.wav file); "
                         "voices directory \"%s\"", self->duplex->voices_dir.c_str()));
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
  const personaplex::duplex::StartTimes &t = d->session->start_times();
  GST_INFO_OBJECT(self,
                  "conversation started after %" G_GINT64_FORMAT " prompt steps: voice and text read in %.1f ms, "
                  "warm-up %.1f ms, prompts %.1f ms%s",
                  d->session->prompt_steps(), t.load_ms, t.warm_up_ms, t.prompts_ms,
                  t.prompts_cached ? " (from the prompt cache)"
                  : t.voice_cached ? " (the voice's from the prompt cache)"
                                   : "");
  if (d->session->batch())
    GST_INFO_OBJECT(self,
                    "batch join: %.1f ms waiting for a prefill worker, %.1f ms prompts, %.1f ms first graphs, "
                    "%.1f ms waiting for the running step",
                    t.join.queued_ms, t.join.prompts_ms, t.join.capture_ms, t.join.activate_ms);
  post_started(self, d->session->prompt_steps(), t);
  return true;
}


static void warn_from_engine(GstPersonaPlex *self, const std::string &message) {
  GST_ELEMENT_WARNING(self, RESOURCE, SETTINGS, ("%s", message.c_str()), (nullptr));
}

size_t queue_capacity(GstPersonaPlex *self) {
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
  d->progress_started = d->progress_posted = 0;
  d->progress_first = GST_CLOCK_TIME_NONE;
  d->output->reset();
}

// READY -> PAUSED: files, model, session, prompts.
bool start(GstPersonaPlex *self) {
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
  d->output->text().configure(settings_text_options(s));
  if (!start_conversation(self)) {
    d->session.reset();
    return false;
  }
  d->mode = s.is_live ? Mode::kLive : Mode::kUndecided;
  return true;
}

// PAUSED -> READY, after the pads are deactivated (the task is stopped).
void stop(GstPersonaPlex *self) {
  Duplex *d = self->duplex;
  gst_pad_stop_task(self->srcpad);
  d->session.reset();
  reset_stream(self);
  d->mode = Mode::kUndecided;
}

void post_stats(GstPersonaPlex *self, bool force) {
  Duplex *d = self->duplex;
  if (!d->stats.message_due(force ? 1 : d->frames_per_stats)) return;
  GstStructure *s = d->stats.take_message(d->frame_duration, d->mode == Mode::kLive);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

// Runs the model on one frame of input (`real` samples, the rest zero);
// false after posting an error.
bool compute_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
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
GstFlowReturn push_step(GstPersonaPlex *self, personaplex::duplex::FrameResult &r, size_t real,
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
GstFlowReturn run_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
                       bool discont) {
  personaplex::duplex::FrameResult r;
  if (!compute_step(self, pcm, real, pts, &r)) return GST_FLOW_ERROR;
  return push_step(self, r, real, pts, discont);
}

void reset_conversation(GstPersonaPlex *self) {
  GST_DEBUG_OBJECT(self, "conversation reset requested");
  self->duplex->reset_pending = true;
}

}  // namespace gstpersonaplex
