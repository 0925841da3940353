/**
 * SECTION:element-mimidec
 * @title: mimidec
 * @see_also: mimienc
 *
 * Decodes Mimi codes (`audio/x-mimi`, as mimienc produces them: one 80 ms
 * frame of `codebooks` little-endian unsigned 16-bit codes per buffer) into
 * 24 kHz mono audio, F32LE, S32LE or S16LE (F32LE when downstream takes it).
 * Input buffers holding several frames, or frames cut anywhere (a raw code
 * file read by filesrc), are split into frames; a trailing partial frame is
 * dropped. A #GstAudioClippingMeta on a frame (mimienc puts one on the padded
 * last frame) trims the decoded samples.
 *
 * Packet loss concealment: a GAP event (or a lost frame) becomes audio of the
 * gap's duration: the last frame's codes decoded again and faded out over one
 * frame, then silence. The base class's `plc` property is on by default;
 * turned off, GAP events are forwarded instead.
 *
 * A code outside [0, codebook-size) is a decoding error naming the frame and
 * the value; with the default `max-errors` (-1) it is posted as a warning and
 * the frame concealed, with `max-errors=0` it stops the stream with an error.
 * A flush or a new stream starts a fresh codec stream.
 *
 * The caps' codebooks and codebook-size must be the model's (`weights`,
 * `config`); elements of one process that name the same files and device
 * share one loaded model.
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=speech.mimi ! \
 *     audio/x-mimi,rate=24000,channels=1,frame-duration-us=80000,codebooks=8,codebook-size=2048 ! \
 *     mimidec weights=tokenizer-e351c8d8-checkpoint125.safetensors ! audioconvert ! wavenc ! \
 *     filesink location=decoded.wav
 * ]| Decodes a raw code file written by mimienc into a wav file.
 */
#include "gstmimidec.h"

#include <gst/audio/audio.h>

#include <exception>
#include <memory>
#include <vector>

#include "gstmimimodel.h"
#include "gstpcmnegotiation.h"
#include "gstpcmsamples.h"
#include "mimi/mimi.h"
#include "mimi/state.h"

GST_DEBUG_CATEGORY_STATIC(gst_mimi_dec_debug);
#define GST_CAT_DEFAULT gst_mimi_dec_debug

using personaplex::mimi::Mimi;
using personaplex::mimi::MimiState;

namespace {

// Concealment and silence go out in pieces of at most this long, so a long
// GAP never needs one huge buffer.
constexpr GstClockTime kMaxChunk = GST_SECOND;

// What the streaming thread uses; set up in start(), guarded by the stream lock.
struct DecStream {
  std::shared_ptr<const Mimi> model;
  std::unique_ptr<MimiState> state;
  GstAudioFormat format = GST_AUDIO_FORMAT_UNKNOWN;  // output
  gsize frame_bytes = 0;                             // input frame size
  at::Tensor last_codes;  // the last good frame, repeated by concealment
  bool concealing = false;
  gint bad_in_a_row = 0;  // frames that could not be decoded, for max-errors
  guint64 frames = 0;     // input frames since the last reset, for messages
};

}  // namespace

struct _GstMimiDec {
  GstAudioDecoder parent;
  gstpersonaplex::MimiModelSettings *settings;  // guarded by the object lock
  DecStream *stream;
};

G_DEFINE_TYPE(GstMimiDec, gst_mimi_dec, GST_TYPE_AUDIO_DECODER);
GST_ELEMENT_REGISTER_DEFINE(mimidec, "mimidec", GST_RANK_NONE, GST_TYPE_MIMI_DEC);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS(GST_MIMI_TEMPLATE_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC,
    GST_PAD_ALWAYS,
    GST_STATIC_CAPS(GST_PERSONAPLEX_PCM_OUT_CAPS));

static void reset_state(GstMimiDec *self) {
  DecStream *s = self->stream;
  if (s->state) s->state->reset();
  s->last_codes = at::Tensor();
  s->concealing = false;
  s->bad_in_a_row = 0;
  s->frames = 0;
}

static gboolean gst_mimi_dec_start(GstAudioDecoder *dec) {
  GstMimiDec *self = GST_MIMI_DEC(dec);
  if (!gstpersonaplex::mimi_model_open_stream(GST_ELEMENT(dec), self->settings, &self->stream->model,
                                              &self->stream->state))
    return FALSE;
  reset_state(self);
  // The base class clears these with its context at every start.
  gst_audio_decoder_set_plc_aware(dec, TRUE);
  // Constant bitrate: byte positions of a raw code file convert to time.
  gst_audio_decoder_set_estimate_rate(dec, TRUE);
  return TRUE;
}

static gboolean gst_mimi_dec_stop(GstAudioDecoder *dec) {
  DecStream *s = GST_MIMI_DEC(dec)->stream;
  s->state.reset();
  s->model.reset();  // the cache frees the model with its last user
  s->last_codes = at::Tensor();
  s->format = GST_AUDIO_FORMAT_UNKNOWN;
  s->frame_bytes = 0;
  return TRUE;
}

// The stream's caps must describe the model's frames.
static bool caps_match_model(GstMimiDec *self, const GstStructure *st, const Mimi &model) {
  gint rate = 0, channels = 0, codebooks = 0, codebook_size = 0, frame_us = 0;
  gst_structure_get_int(st, "rate", &rate);
  gst_structure_get_int(st, "channels", &channels);
  gst_structure_get_int(st, "codebooks", &codebooks);
  gst_structure_get_int(st, "codebook-size", &codebook_size);
  gst_structure_get_int(st, "frame-duration-us", &frame_us);
  const gint64 model_frame_us = model.frame_size() * 1000000 / model.sample_rate();
  if (rate == model.sample_rate() && channels == 1 && codebooks == model.num_codebooks() &&
      codebook_size == model.codebook_size() && frame_us == model_frame_us)
    return true;
  GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
      ("The Mimi stream does not fit the model"),
      ("stream: %d Hz, %d channels, %d us frames, %d codebooks of %d; model: %" G_GINT64_FORMAT
       " Hz, 1 channel, %" G_GINT64_FORMAT " us frames, %" G_GINT64_FORMAT " codebooks of %"
       G_GINT64_FORMAT, rate, channels, frame_us, codebooks, codebook_size, model.sample_rate(),
       model_frame_us, model.num_codebooks(), model.codebook_size()));
  return false;
}

static gboolean gst_mimi_dec_set_format(GstAudioDecoder *dec, GstCaps *caps) {
  GstMimiDec *self = GST_MIMI_DEC(dec);
  DecStream *s = self->stream;
  const Mimi &model = *s->model;
  if (!caps_match_model(self, gst_caps_get_structure(caps, 0), model)) return FALSE;

  // F32LE (the model's own output) when downstream takes it.
  gchar *downstream = nullptr;
  const gint rate = static_cast<gint>(model.sample_rate());
  const GstAudioFormat format =
      gstpersonaplex::pcm_pick_output_format(GST_AUDIO_DECODER_SRC_PAD(dec), rate, GST_AUDIO_FORMAT_F32LE, &downstream);
  if (format == GST_AUDIO_FORMAT_UNKNOWN) {
    gstpersonaplex::pcm_negotiation_error(GST_ELEMENT(dec), rate, downstream, nullptr);
    g_free(downstream);
    return FALSE;
  }
  GstAudioInfo info;
  gst_audio_info_set_format(&info, format, rate, 1, nullptr);
  if (!gst_audio_decoder_set_output_format(dec, &info)) return FALSE;
  s->format = format;
  s->frame_bytes = static_cast<gsize>(model.num_codebooks()) * 2;
  return TRUE;
}

// The codes take any downstream: the output format is chosen at set_format
// (where a downstream that takes none of ours is named), so the sink caps
// are not narrowed by downstream's, as the base class's proxying would do
// (upstream would then fail with a bare not-negotiated).
static GstCaps *gst_mimi_dec_getcaps(GstAudioDecoder *dec, GstCaps *filter) {
  GstCaps *caps = gst_pad_get_pad_template_caps(GST_AUDIO_DECODER_SINK_PAD(dec));
  if (!filter) return caps;
  GstCaps *both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref(caps);
  return both;
}

// The base class sends the caps; a refusal is named here, with what
// downstream takes (a flush is no refusal).
static gboolean gst_mimi_dec_negotiate(GstAudioDecoder *dec) {
  if (GST_AUDIO_DECODER_CLASS(gst_mimi_dec_parent_class)->negotiate(dec)) return TRUE;
  GstPad *srcpad = GST_AUDIO_DECODER_SRC_PAD(dec);
  if (GST_PAD_IS_FLUSHING(srcpad)) return FALSE;
  GstCaps *peer = gst_pad_peer_query_caps(srcpad, nullptr);
  GstCaps *ours = gst_pad_get_current_caps(srcpad);
  if (!ours) ours = gst_audio_info_to_caps(gst_audio_decoder_get_audio_info(dec));
  gchar *takes = gst_caps_to_string(peer), *refused = gst_caps_to_string(ours);
  gstpersonaplex::pcm_negotiation_error(GST_ELEMENT(dec), 0, takes, refused);
  g_free(takes);
  g_free(refused);
  gst_caps_unref(peer);
  gst_caps_unref(ours);
  return FALSE;
}

// Cuts the adapter into frames of `codebooks` u16 codes.
static GstFlowReturn gst_mimi_dec_parse(GstAudioDecoder *dec, GstAdapter *adapter,
                                        gint *offset, gint *length) {
  const gsize frame_bytes = GST_MIMI_DEC(dec)->stream->frame_bytes;
  if (frame_bytes == 0) return GST_FLOW_NOT_NEGOTIATED;
  if (gst_adapter_available(adapter) < frame_bytes) return GST_FLOW_EOS;  // need more
  *offset = 0;
  *length = static_cast<gint>(frame_bytes);
  return GST_FLOW_OK;
}

// `n` mono samples from `pcm` as an output buffer in the negotiated format.
static GstBuffer *pcm_buffer(GstAudioFormat format, const float *pcm, gsize n) {
  return gstpersonaplex::pcm_buffer_from_floats(pcm, n, format);
}

// Decodes one frame of codes to CPU float samples; throws on engine errors.
static at::Tensor decode(DecStream *s, const at::Tensor &codes) {
  const at::Tensor on_device = codes.to(s->model->device());
  return s->model->decode_frame(on_device, *s->state).to(at::kCPU, at::kFloat).contiguous();
}

// The first frame of a loss: the last codes again, fading out; then silence.
static std::vector<float> concealment(GstMimiDec *self, gsize samples) {
  DecStream *s = self->stream;
  std::vector<float> pcm(samples, 0.0f);
  if (s->concealing || !s->last_codes.defined()) return pcm;
  s->concealing = true;
  try {
    at::Tensor again = decode(s, s->last_codes);
    const float *src = again.data_ptr<float>();
    const gsize frame = static_cast<gsize>(again.numel());
    for (gsize i = 0; i < MIN(samples, frame); ++i)
      pcm[i] = src[i] * (1.0f - static_cast<float>(i + 1) / frame);
  } catch (const std::exception &e) {
    GST_WARNING_OBJECT(self, "concealment fell back to silence: %s", e.what());
  }
  return pcm;
}

// Finishes the pending frame with `samples` of concealment; a long one goes
// out in pieces, all as subframes, since a final finish_frame() with data
// would restart the timestamps at the frame's.
static GstFlowReturn conceal(GstMimiDec *self, gsize samples) {
  GstAudioDecoder *dec = GST_AUDIO_DECODER(self);
  DecStream *s = self->stream;
  if (samples == 0) return gst_audio_decoder_finish_frame(dec, nullptr, 1);
  GST_DEBUG_OBJECT(self, "concealing %" G_GSIZE_FORMAT " samples", samples);
  const std::vector<float> pcm = concealment(self, samples);
  const gsize chunk = gst_util_uint64_scale(kMaxChunk, s->model->sample_rate(), GST_SECOND);
  if (samples <= chunk)
    return gst_audio_decoder_finish_frame(dec, pcm_buffer(s->format, pcm.data(), samples), 1);
  GstFlowReturn ret = GST_FLOW_OK;
  for (gsize done = 0; ret == GST_FLOW_OK && done < samples; done += chunk) {
    const gsize n = MIN(chunk, samples - done);
    ret = gst_audio_decoder_finish_subframe(dec, pcm_buffer(s->format, pcm.data() + done, n));
  }
  GstFlowReturn finished = gst_audio_decoder_finish_frame(dec, nullptr, 1);
  return ret != GST_FLOW_OK ? ret : finished;
}

static gsize samples_in(GstMimiDec *self, GstClockTime duration) {
  const Mimi &model = *self->stream->model;
  if (!GST_CLOCK_TIME_IS_VALID(duration)) return model.frame_size();
  return gst_util_uint64_scale_round(duration, model.sample_rate(), GST_SECOND);
}

// Reads a frame's codes; on a code out of range returns an undefined tensor
// and sets *bad_codebook / *bad_value.
static at::Tensor read_codes(GstBuffer *buffer, const Mimi &model, gint *bad_codebook,
                             guint *bad_value) {
  const gint64 k = model.num_codebooks();
  at::Tensor codes = at::empty({1, k, 1}, at::kLong);
  int64_t *dst = codes.data_ptr<int64_t>();
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_READ);
  for (gint64 i = 0; i < k; ++i) dst[i] = GST_READ_UINT16_LE(map.data + 2 * i);
  gst_buffer_unmap(buffer, &map);
  for (gint64 i = 0; i < k; ++i) {
    if (dst[i] >= model.codebook_size()) {
      *bad_codebook = static_cast<gint>(i);
      *bad_value = static_cast<guint>(dst[i]);
      return at::Tensor();
    }
  }
  return codes;
}

// Samples [start, end) of a frame that survive the buffer's clipping meta.
static void clipped_range(GstBuffer *buffer, gsize frame, gsize *start, gsize *end) {
  *start = 0;
  *end = frame;
  GstAudioClippingMeta *clip = gst_buffer_get_audio_clipping_meta(buffer);
  if (!clip || clip->format != GST_FORMAT_DEFAULT) return;
  *start = MIN(clip->start, frame);
  *end = frame - MIN(clip->end, frame - *start);
}

// A frame that cannot be decoded: an error once the base class's max-errors
// is exceeded (by default never), otherwise a warning and the frame concealed.
static GstFlowReturn bad_frame(GstMimiDec *self, GstBuffer *buffer, gchar *what) {
  GstFlowReturn ret = GST_FLOW_OK;
  // The base class forgets its error count at every output, concealment
  // included; the weight carries the count of bad frames in a row instead.
  const gint in_a_row = ++self->stream->bad_in_a_row;
  GST_AUDIO_DECODER_ERROR(self, in_a_row, STREAM, DECODE, ("%s", what),
      ("frame pts %" GST_TIME_FORMAT, GST_TIME_ARGS(GST_BUFFER_PTS(buffer))), ret);
  if (ret == GST_FLOW_OK) {
    GST_ELEMENT_WARNING(self, STREAM, DECODE, ("%s", what),
        ("frame pts %" GST_TIME_FORMAT " concealed", GST_TIME_ARGS(GST_BUFFER_PTS(buffer))));
    ret = conceal(self, self->stream->model->frame_size());
  }
  g_free(what);
  return ret;
}

static GstFlowReturn decode_frame(GstMimiDec *self, GstBuffer *buffer) {
  GstAudioDecoder *dec = GST_AUDIO_DECODER(self);
  DecStream *s = self->stream;
  const guint64 index = s->frames++;
  gint bad_codebook = -1;
  guint bad_value = 0;
  at::Tensor codes = read_codes(buffer, *s->model, &bad_codebook, &bad_value);
  if (!codes.defined())
    return bad_frame(self, buffer, g_strdup_printf(
        "Invalid Mimi code in frame %" G_GUINT64_FORMAT ": codebook %d holds %u, outside "
        "[0, %" G_GINT64_FORMAT ")", index, bad_codebook, bad_value, s->model->codebook_size()));

  at::Tensor pcm;
  try {
    pcm = decode(s, codes);
  } catch (const std::exception &e) {
    return bad_frame(self, buffer, g_strdup_printf(
        "Could not decode Mimi frame %" G_GUINT64_FORMAT ": %s", index, e.what()));
  }
  s->last_codes = codes;
  s->concealing = false;
  s->bad_in_a_row = 0;

  gsize start, end;
  clipped_range(buffer, static_cast<gsize>(pcm.numel()), &start, &end);
  if (start == end) return gst_audio_decoder_finish_frame(dec, nullptr, 1);
  return gst_audio_decoder_finish_frame(
      dec, pcm_buffer(s->format, pcm.data_ptr<float>() + start, end - start), 1);
}

static GstFlowReturn gst_mimi_dec_handle_frame(GstAudioDecoder *dec, GstBuffer *buffer) {
  GstMimiDec *self = GST_MIMI_DEC(dec);
  if (!buffer) return GST_FLOW_OK;  // drain: the model holds no pending audio
  const gsize size = gst_buffer_get_size(buffer);
  if (size == 0)  // a GAP or lost frame, handed over by the base class's PLC
    return conceal(self, samples_in(self, GST_BUFFER_DURATION(buffer)));
  if (size != self->stream->frame_bytes) {  // not from parse(): cannot happen
    GST_ELEMENT_ERROR(dec, STREAM, DECODE, (nullptr),
                      ("frame of %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT, size,
                       self->stream->frame_bytes));
    return GST_FLOW_ERROR;
  }
  return decode_frame(self, buffer);
}

static void gst_mimi_dec_flush(GstAudioDecoder *dec, gboolean hard) {
  GST_DEBUG_OBJECT(dec, "flush (hard %d): fresh codec stream", hard);
  reset_state(GST_MIMI_DEC(dec));
}

static void gst_mimi_dec_set_property(GObject *object, guint prop_id, const GValue *value,
                                      GParamSpec *pspec) {
  gstpersonaplex::mimi_model_set_property(object, GST_MIMI_DEC(object)->settings, prop_id, value, pspec);
}

static void gst_mimi_dec_get_property(GObject *object, guint prop_id, GValue *value,
                                      GParamSpec *pspec) {
  gstpersonaplex::mimi_model_get_property(object, GST_MIMI_DEC(object)->settings, prop_id, value, pspec);
}

static void gst_mimi_dec_finalize(GObject *object) {
  GstMimiDec *self = GST_MIMI_DEC(object);
  delete self->stream;
  delete self->settings;
  G_OBJECT_CLASS(gst_mimi_dec_parent_class)->finalize(object);
}

static void gst_mimi_dec_class_init(GstMimiDecClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstAudioDecoderClass *dec_class = GST_AUDIO_DECODER_CLASS(klass);

  gobject_class->set_property = gst_mimi_dec_set_property;
  gobject_class->get_property = gst_mimi_dec_get_property;
  gobject_class->finalize = gst_mimi_dec_finalize;
  gstpersonaplex::mimi_model_install_properties(gobject_class);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "Mimi audio decoder",
      "Codec/Decoder/Audio",
      "Decodes codes of Mimi, the neural codec of Moshi and PersonaPlex, into 24 kHz mono "
      "audio, concealing lost frames",
      "gst-personaplex developers");

  dec_class->start = GST_DEBUG_FUNCPTR(gst_mimi_dec_start);
  dec_class->stop = GST_DEBUG_FUNCPTR(gst_mimi_dec_stop);
  dec_class->set_format = GST_DEBUG_FUNCPTR(gst_mimi_dec_set_format);
  dec_class->negotiate = GST_DEBUG_FUNCPTR(gst_mimi_dec_negotiate);
  dec_class->getcaps = GST_DEBUG_FUNCPTR(gst_mimi_dec_getcaps);
  dec_class->parse = GST_DEBUG_FUNCPTR(gst_mimi_dec_parse);
  dec_class->handle_frame = GST_DEBUG_FUNCPTR(gst_mimi_dec_handle_frame);
  dec_class->flush = GST_DEBUG_FUNCPTR(gst_mimi_dec_flush);

  GST_DEBUG_CATEGORY_INIT(gst_mimi_dec_debug, "mimidec", 0, "Mimi audio decoder");
}

static void gst_mimi_dec_init(GstMimiDec *self) {
  self->settings = new gstpersonaplex::MimiModelSettings();
  self->stream = new DecStream();
  GstAudioDecoder *dec = GST_AUDIO_DECODER(self);
  gst_audio_decoder_set_needs_format(dec, TRUE);
  gst_audio_decoder_set_plc(dec, TRUE);
}
