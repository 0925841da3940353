/**
 * SECTION:element-personaplex
 * @title: personaplex
 * @see_also: mimienc, mimidec
 *
 * A full-duplex spoken conversation with NVIDIA PersonaPlex: the user's
 * speech comes in on the `sink` pad (24 kHz mono), the model's speech goes
 * out on `src` (same caps family) and its words on `text_src`
 * (`text/x-raw, format=utf8`; `text-unit` picks one buffer per word, the
 * default, subtitle cues, or the model's pieces; GAP events keep the sparse
 * stream flowing). Every 80 ms frame of input gives one 80 ms frame of
 * output. A `personaplex-word` element message accompanies each word, a
 * `personaplex-stats` message reports the step times about once per second,
 * and offline a `personaplex-progress` message how far the input is done.
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
 * The text pad pushes from a task of its own, as demuxers with an internal
 * multiqueue do: branches without queues preroll and end. With nothing
 * upstream the element counts as a source: EOS sent to the pipeline
 * (`gst-launch-1.0 -e` and Ctrl-C) ends a live conversation cleanly.
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

#include "gstpcmnegotiation.h"
#include "gstpcmsamples.h"
#include "gstpersonaplexprivate.h"

// Not static: the element's other files log in it too.
GST_DEBUG_CATEGORY(gst_personaplex_debug);
#define GST_CAT_DEFAULT gst_personaplex_debug

using namespace gstpersonaplex;

G_DEFINE_TYPE(GstPersonaPlex, gst_personaplex, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(personaplex, "personaplex", GST_RANK_NONE, GST_TYPE_PERSONAPLEX);

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_PERSONAPLEX_PCM_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(GST_PERSONAPLEX_PCM_OUT_CAPS));
static GstStaticPadTemplate text_template = GST_STATIC_PAD_TEMPLATE("text_src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS("text/x-raw, format = (string) utf8"));

enum { SIGNAL_RESET, LAST_SIGNAL };
static guint signals[LAST_SIGNAL];

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

static gboolean gst_personaplex_text_activate_mode(GstPad *pad, GstObject *parent, GstPadMode mode,
                                                   gboolean active) {
  if (mode != GST_PAD_MODE_PUSH) return FALSE;
  return GST_PERSONAPLEX(parent)->duplex->output->text().activate(active);
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

// EOS sent to the element (gst-launch-1.0 -e, gst_element_send_event() on the
// pipeline): live, the frame in progress finishes and EOS goes out on both
// source pads; otherwise it travels as if from upstream.
static gboolean gst_personaplex_send_event(GstElement *element, GstEvent *event) {
  GstPersonaPlex *self = GST_PERSONAPLEX(element);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && (self->duplex->mode == Mode::kLive ||
                                                !gst_pad_is_linked(self->sinkpad))) {
    GST_INFO_OBJECT(self, "EOS requested: ending the conversation");
    gst_event_unref(event);
    if (self->duplex->mode == Mode::kLive)
      self->duplex->queue.mark_eos();
    else
      drain_offline(self);
    return TRUE;
  }
  return GST_ELEMENT_CLASS(gst_personaplex_parent_class)->send_event(element, event);
}

// With nothing upstream the element is where the stream starts: a bin then
// counts it among its sources, and sends it the EOS and seeks it is sent.
static void update_source_flag(GstPersonaPlex *self) {
  GST_OBJECT_LOCK(self);
  if (gst_pad_is_linked(self->sinkpad))
    GST_OBJECT_FLAG_UNSET(self, GST_ELEMENT_FLAG_SOURCE);
  else
    GST_OBJECT_FLAG_SET(self, GST_ELEMENT_FLAG_SOURCE);
  GST_OBJECT_UNLOCK(self);
}

static GstStateChangeReturn gst_personaplex_change_state(GstElement *element, GstStateChange transition) {
  GstPersonaPlex *self = GST_PERSONAPLEX(element);
  Duplex *d = self->duplex;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!start(self)) return GST_STATE_CHANGE_FAILURE;
      update_source_flag(self);
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
  element_class->send_event = GST_DEBUG_FUNCPTR(gst_personaplex_send_event);
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
  gst_pad_set_activatemode_function(self->textpad, GST_DEBUG_FUNCPTR(gst_personaplex_text_activate_mode));
  self->duplex->output = std::make_unique<DuplexOutput>(GST_ELEMENT(self), self->srcpad, self->textpad);
}
