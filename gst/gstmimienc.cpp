/**
 * SECTION:element-mimienc
 * @title: mimienc
 * @see_also: mimidec
 *
 * Encodes 24 kHz mono audio with Mimi, the streaming neural codec of Moshi and
 * PersonaPlex. Each 80 ms frame (1920 samples) becomes one buffer of
 * `codebooks` little-endian unsigned 16-bit codes (8 codes, 16 bytes, for the
 * released model), with caps
 * `audio/x-mimi, rate=24000, channels=1, frame-duration-us=80000, codebooks=8,
 * codebook-size=2048` (codebooks and codebook-size come from the model).
 *
 * The partial frame left at EOS is padded with zeros; its buffer carries a
 * #GstAudioClippingMeta giving the padding, which mimidec cuts off again, so a
 * round trip keeps the length. A flush, a new stream or EOS starts a fresh
 * codec stream. The element reports one frame (80 ms) of latency.
 *
 * The `weights` property names the Mimi safetensors file (the released
 * `tokenizer-e351c8d8-checkpoint125.safetensors`, or one of the same layout
 * with a `config` file giving its sizes). Elements of one process that name
 * the same files and device share one loaded model.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=speech.wav ! wavparse ! audioconvert ! audioresample ! \
 *     mimienc weights=tokenizer-e351c8d8-checkpoint125.safetensors ! filesink location=speech.mimi
 * ]| Stores the codes of a wav file as a raw sequence of frames (see mimidec to decode them).
 */
#include "gstmimienc.h"

#include <gst/audio/audio.h>

#include <exception>
#include <memory>

#include "gstmimimodel.h"
#include "gstpcmsamples.h"
#include "mimi/mimi.h"
#include "mimi/state.h"

GST_DEBUG_CATEGORY_STATIC(gst_mimi_enc_debug);
#define GST_CAT_DEFAULT gst_mimi_enc_debug

using personaplex::mimi::Mimi;
using personaplex::mimi::MimiState;

namespace {

// What the streaming thread uses; set up in start(), guarded by the stream lock.
struct EncStream {
  std::shared_ptr<const Mimi> model;
  std::unique_ptr<MimiState> state;
  GstAudioFormat format = GST_AUDIO_FORMAT_UNKNOWN;
  guint64 frames = 0;  // frames encoded since the last reset, for messages
};

}  // namespace

struct _GstMimiEnc {
  GstAudioEncoder parent;
  gstpersonaplex::MimiModelSettings *settings;  // guarded by the object lock
  EncStream *stream;
};

G_DEFINE_TYPE(GstMimiEnc, gst_mimi_enc, GST_TYPE_AUDIO_ENCODER);
GST_ELEMENT_REGISTER_DEFINE(mimienc, "mimienc", GST_RANK_NONE, GST_TYPE_MIMI_ENC);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS(GST_PERSONAPLEX_PCM_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS(GST_MIMI_TEMPLATE_CAPS));

static void reset_state(GstMimiEnc *self) {
  EncStream *s = self->stream;
  if (s->state) s->state->reset();
  s->frames = 0;
}

static gboolean gst_mimi_enc_start(GstAudioEncoder *enc) {
  GstMimiEnc *self = GST_MIMI_ENC(enc);
  if (!gstpersonaplex::mimi_model_open_stream(GST_ELEMENT(enc), self->settings, &self->stream->model,
                                              &self->stream->state))
    return FALSE;
  self->stream->frames = 0;
  return TRUE;
}

static gboolean gst_mimi_enc_stop(GstAudioEncoder *enc) {
  EncStream *s = GST_MIMI_ENC(enc)->stream;
  s->state.reset();
  s->model.reset();  // the cache frees the model with its last user
  s->format = GST_AUDIO_FORMAT_UNKNOWN;
  return TRUE;
}

static gboolean gst_mimi_enc_set_format(GstAudioEncoder *enc, GstAudioInfo *info) {
  EncStream *s = GST_MIMI_ENC(enc)->stream;
  const Mimi &model = *s->model;
  if (GST_AUDIO_INFO_RATE(info) != model.sample_rate() || GST_AUDIO_INFO_CHANNELS(info) != 1) {
    GST_WARNING_OBJECT(enc, "the model takes %" G_GINT64_FORMAT " Hz mono, not %d Hz with %d "
                       "channels", model.sample_rate(), GST_AUDIO_INFO_RATE(info),
                       GST_AUDIO_INFO_CHANNELS(info));
    return FALSE;
  }
  s->format = GST_AUDIO_INFO_FORMAT(info);

  // One whole frame per call; the short frame at EOS comes too and is padded.
  const gint frame = static_cast<gint>(model.frame_size());
  gst_audio_encoder_set_frame_samples_min(enc, frame);
  gst_audio_encoder_set_frame_samples_max(enc, frame);
  gst_audio_encoder_set_frame_max(enc, 1);
  gst_audio_encoder_set_hard_min(enc, FALSE);
  gst_audio_encoder_set_lookahead(enc, 0);
  const GstClockTime frame_duration =
      gst_util_uint64_scale_int(frame, GST_SECOND, GST_AUDIO_INFO_RATE(info));
  gst_audio_encoder_set_latency(enc, frame_duration, frame_duration);

  GstCaps *caps = gstpersonaplex::mimi_model_codec_caps(model);
  gboolean ok = gst_audio_encoder_set_output_format(enc, caps);
  gst_caps_unref(caps);
  return ok;
}

static GstBuffer *codes_buffer(const at::Tensor &codes) {
  const gint64 n = codes.numel();
  const int64_t *values = codes.data_ptr<int64_t>();
  GstBuffer *out = gst_buffer_new_allocate(nullptr, n * 2, nullptr);
  GstMapInfo map;
  gst_buffer_map(out, &map, GST_MAP_WRITE);
  for (gint64 k = 0; k < n; ++k) GST_WRITE_UINT16_LE(map.data + 2 * k, values[k]);
  gst_buffer_unmap(out, &map);
  return out;
}

static GstFlowReturn gst_mimi_enc_handle_frame(GstAudioEncoder *enc, GstBuffer *buffer) {
  GstMimiEnc *self = GST_MIMI_ENC(enc);
  EncStream *s = self->stream;
  if (!buffer) return GST_FLOW_OK;  // drain: the model holds no pending audio

  const Mimi &model = *s->model;
  const gint64 frame = model.frame_size();
  const gsize bpf = s->format == GST_AUDIO_FORMAT_F32LE ? 4 : 2;
  at::Tensor pcm = at::zeros({1, 1, frame}, at::kFloat);
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(enc, STREAM, ENCODE, (nullptr), ("could not map the input buffer"));
    return GST_FLOW_ERROR;
  }
  const gsize n = MIN(map.size / bpf, static_cast<gsize>(frame));
  gstpersonaplex::pcm_read_floats(map.data, n, s->format, pcm.data_ptr<float>());
  gst_buffer_unmap(buffer, &map);

  at::Tensor codes;
  try {
    codes = model.encode_frame(pcm, *s->state).to(at::kCPU, at::kLong).contiguous();
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(enc, STREAM, ENCODE, (nullptr), ("frame %" G_GUINT64_FORMAT ": %s",
                                                       s->frames, e.what()));
    return GST_FLOW_ERROR;
  }
  ++s->frames;
  GstBuffer *out = codes_buffer(codes);
  if (n < static_cast<gsize>(frame)) {
    // The padding, for the decoder to cut; the buffer still spans a whole frame.
    GST_DEBUG_OBJECT(enc, "last frame: %" G_GSIZE_FORMAT " samples, padded", n);
    gst_buffer_add_audio_clipping_meta(out, GST_FORMAT_DEFAULT, 0, frame - n);
  }
  return gst_audio_encoder_finish_frame(enc, out, static_cast<gint>(frame));
}

static gboolean gst_mimi_enc_sink_event(GstAudioEncoder *enc, GstEvent *event) {
  const GstEventType type = GST_EVENT_TYPE(event);
  gboolean ret = GST_AUDIO_ENCODER_CLASS(gst_mimi_enc_parent_class)->sink_event(enc, event);
  // After a flush, a new stream or EOS (whose drain encoded a padded frame),
  // the next audio starts a fresh codec stream. The base class only calls
  // flush() when it holds undrained data, hence the events.
  if (type == GST_EVENT_FLUSH_STOP || type == GST_EVENT_STREAM_START || type == GST_EVENT_EOS) {
    GST_AUDIO_ENCODER_STREAM_LOCK(enc);
    reset_state(GST_MIMI_ENC(enc));
    GST_AUDIO_ENCODER_STREAM_UNLOCK(enc);
  }
  return ret;
}

static void gst_mimi_enc_set_property(GObject *object, guint prop_id, const GValue *value,
                                      GParamSpec *pspec) {
  gstpersonaplex::mimi_model_set_property(object, GST_MIMI_ENC(object)->settings, prop_id, value, pspec);
}

static void gst_mimi_enc_get_property(GObject *object, guint prop_id, GValue *value,
                                      GParamSpec *pspec) {
  gstpersonaplex::mimi_model_get_property(object, GST_MIMI_ENC(object)->settings, prop_id, value, pspec);
}

static void gst_mimi_enc_finalize(GObject *object) {
  GstMimiEnc *self = GST_MIMI_ENC(object);
  delete self->stream;
  delete self->settings;
  G_OBJECT_CLASS(gst_mimi_enc_parent_class)->finalize(object);
}

static void gst_mimi_enc_class_init(GstMimiEncClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstAudioEncoderClass *enc_class = GST_AUDIO_ENCODER_CLASS(klass);

  gobject_class->set_property = gst_mimi_enc_set_property;
  gobject_class->get_property = gst_mimi_enc_get_property;
  gobject_class->finalize = gst_mimi_enc_finalize;
  gstpersonaplex::mimi_model_install_properties(gobject_class);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "Mimi audio encoder",
      "Codec/Encoder/Audio",
      "Encodes 24 kHz mono audio into codes of Mimi, the neural codec of Moshi and "
      "PersonaPlex (8 codebooks at 12.5 frames/s)",
      "gst-personaplex developers");

  enc_class->start = GST_DEBUG_FUNCPTR(gst_mimi_enc_start);
  enc_class->stop = GST_DEBUG_FUNCPTR(gst_mimi_enc_stop);
  enc_class->set_format = GST_DEBUG_FUNCPTR(gst_mimi_enc_set_format);
  enc_class->handle_frame = GST_DEBUG_FUNCPTR(gst_mimi_enc_handle_frame);
  enc_class->sink_event = GST_DEBUG_FUNCPTR(gst_mimi_enc_sink_event);

  GST_DEBUG_CATEGORY_INIT(gst_mimi_enc_debug, "mimienc", 0, "Mimi audio encoder");
}

static void gst_mimi_enc_init(GstMimiEnc *self) {
  self->settings = new gstpersonaplex::MimiModelSettings();
  self->stream = new EncStream();
  // Output timestamps follow the sample count, whatever the input's jitter.
  gst_audio_encoder_set_perfect_timestamp(GST_AUDIO_ENCODER(self), TRUE);
}
