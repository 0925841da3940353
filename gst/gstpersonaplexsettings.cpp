#include "gstpersonaplexsettings.h"

#include <ATen/ATen.h>

#include <random>

#include "core/device.h"
#include "duplex/voice_resolver.h"
#include "gstdevicename.h"

namespace gstpersonaplex {
namespace {

constexpr GParamFlags kReadWrite = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS);

GParamFlags mutable_in(GstState state) {
  return static_cast<GParamFlags>(kReadWrite | (state == GST_STATE_PLAYING ? GST_PARAM_MUTABLE_PLAYING
                                                                            : GST_PARAM_MUTABLE_READY));
}

struct StringProperty {
  guint id;
  const char *name, *nick, *blurb;
  std::string personaplex::duplex::ModelPaths::*field;
};

const StringProperty kFileProperties[] = {
    {DUPLEX_PROP_MODEL_DIR, "model-dir", "Model directory",
     "Directory holding the released files (model.safetensors, "
     "tokenizer-e351c8d8-checkpoint125.safetensors, tokenizer_spm_32k_3.model, voices/)",
     &personaplex::duplex::ModelPaths::model_dir},
    {DUPLEX_PROP_LM_WEIGHTS, "lm-weights", "LM weights",
     "LM weights file (safetensors); overrides the model directory's", &personaplex::duplex::ModelPaths::lm_weights},
    {DUPLEX_PROP_LM_CONFIG, "lm-config", "LM config",
     "LM config.json (reference constructor arguments); default: the model directory's "
     "lm_config.json if present, else the released sizes",
     &personaplex::duplex::ModelPaths::lm_config},
    {DUPLEX_PROP_MIMI_WEIGHTS, "mimi-weights", "Mimi weights",
     "Mimi weights file (safetensors); overrides the model directory's",
     &personaplex::duplex::ModelPaths::mimi_weights},
    {DUPLEX_PROP_MIMI_CONFIG, "mimi-config", "Mimi config",
     "Mimi config.json; default: the model directory's mimi_config.json if present, else the "
     "released sizes",
     &personaplex::duplex::ModelPaths::mimi_config},
    {DUPLEX_PROP_TOKENIZER, "tokenizer", "Tokenizer",
     "SentencePiece text tokenizer model; overrides the model directory's",
     &personaplex::duplex::ModelPaths::tokenizer},
    {DUPLEX_PROP_VOICES_DIR, "voices-dir", "Voices directory",
     "Directory the voice names are looked up in; default: the model directory's voices/",
     &personaplex::duplex::ModelPaths::voices_dir},
};

const StringProperty *file_property(guint id) {
  for (const StringProperty &p : kFileProperties)
    if (p.id == id) return &p;
  return nullptr;
}

bool ready_only_text(guint id) {
  return id >= DUPLEX_PROP_TEXT_UNIT && id <= DUPLEX_PROP_CUE_MAX_DURATION;
}

// Properties read only when the element starts.
bool ready_only(guint id) {
  return file_property(id) || id == DUPLEX_PROP_DEVICE || id == DUPLEX_PROP_DTYPE || id == DUPLEX_PROP_IS_LIVE ||
         id == DUPLEX_PROP_BATCH_SIZE || id == DUPLEX_PROP_WEIGHT_FORMAT || id == DUPLEX_PROP_KV_CACHE ||
         id == DUPLEX_PROP_MIMI_DTYPE || id == DUPLEX_PROP_OFFLOAD_LAYERS || ready_only_text(id);
}

std::string *string_field(DuplexSettings *s, guint id) {
  if (const StringProperty *p = file_property(id)) return &(s->paths.*(p->field));
  switch (id) {
    case DUPLEX_PROP_DEVICE: return &s->device;
    case DUPLEX_PROP_VOICE: return &s->voice;
    case DUPLEX_PROP_PROMPT: return &s->prompt;
    default: return nullptr;
  }
}

void install_strings(GObjectClass *klass) {
  for (const StringProperty &p : kFileProperties)
    g_object_class_install_property(klass, p.id,
        g_param_spec_string(p.name, p.nick, p.blurb, nullptr, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_DEVICE,
      g_param_spec_string("device", "Device",
          "Compute device: \"auto\" (cuda when a GPU is usable, else cpu), \"cpu\", \"cuda\" or "
          "\"cuda:N\"", "auto", mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_DTYPE,
      g_param_spec_enum("dtype", "Data type",
          "Data type of the language model (the codec's: mimi-dtype)",
          GST_TYPE_PERSONAPLEX_DTYPE, GST_PERSONAPLEX_DTYPE_AUTO, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_WEIGHT_FORMAT,
      g_param_spec_enum("weight-format", "Weight format",
          "Storage of the language model's linear weights", GST_TYPE_PERSONAPLEX_WEIGHT_FORMAT,
          GST_PERSONAPLEX_WEIGHT_FORMAT_AUTO, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_KV_CACHE,
      g_param_spec_enum("kv-cache", "KV cache",
          "Storage of each conversation's attention keys and values: fp8 halves the memory a conversation "
          "takes (about 0.8 GB instead of 1.6 at the released model's full context), so twice as many fit",
          GST_TYPE_PERSONAPLEX_KV_CACHE, GST_PERSONAPLEX_KV_CACHE_AUTO, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_MIMI_DTYPE,
      g_param_spec_enum("mimi-dtype", "Codec data type",
          "Data type of the Mimi codec: auto is float32 (the reference's codes); bfloat16 is faster on GPUs "
          "(about 2.6 ms less a frame for 128 conversations) and differs within bf16 rounding",
          GST_TYPE_PERSONAPLEX_CODEC_DTYPE, GST_PERSONAPLEX_DTYPE_AUTO, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_OFFLOAD_LAYERS,
      g_param_spec_uint("offload-layers", "Offloaded layers",
          "Language model layers whose weights stay in host memory and are copied to the GPU at every "
          "frame, for GPUs too small for the model: each saves its weights' device memory (about 0.4 GB "
          "in bf16, 0.2 GB in 8 bits at the released size) and costs a copy over PCIe a frame (see "
          "docs/performance.md); at most the model's layer count",
          0, 1024, 0, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_VOICE,
      g_param_spec_string("voice", "Voice",
          "Voice prompt: a name looked up in the voices directory (\"NATF2\", \"NATF2.pt\"; .pt "
          "first, then .wav) or the path of a .pt or .wav file; empty: the voices directory's "
          "NATF2, else its only voice; \"none\": no voice prompt. Applies at the next (re)start",
          nullptr, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_PROMPT,
      g_param_spec_string("prompt", "Prompt",
          "Role text prompt (wrapped in <system> tags); empty: none. Applies at the next (re)start",
          nullptr, mutable_in(GST_STATE_PLAYING)));
}

void install_sampling(GObjectClass *klass) {
  g_object_class_install_property(klass, DUPLEX_PROP_SEED,
      g_param_spec_uint64("seed", "Seed",
          "Random seed of the sampling; 18446744073709551615 (-1): a fresh random seed at every "
          "(re)start", 0, G_MAXUINT64, 0, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_TEMPERATURE,
      g_param_spec_double("temperature", "Audio temperature", "Sampling temperature of the audio tokens",
          0.0, 10.0, 0.8, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_TEMPERATURE_TEXT,
      g_param_spec_double("temperature-text", "Text temperature", "Sampling temperature of the text tokens",
          0.0, 10.0, 0.7, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_TOP_K,
      g_param_spec_uint("top-k", "Audio top-k", "Audio tokens are sampled among this many most likely",
          1, G_MAXINT, 250, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_TOP_K_TEXT,
      g_param_spec_uint("top-k-text", "Text top-k", "Text tokens are sampled among this many most likely",
          1, G_MAXINT, 25, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_GREEDY,
      g_param_spec_boolean("greedy", "Greedy", "Take the most likely token instead of sampling",
          FALSE, mutable_in(GST_STATE_PLAYING)));
}

void install_timing(GObjectClass *klass) {
  g_object_class_install_property(klass, DUPLEX_PROP_LATENCY,
      g_param_spec_uint64("latency", "Latency",
          "Compute budget of one step in live mode, in nanoseconds: added to the one frame of "
          "latency reported; a step finishing later counts as late", 0, 10 * GST_SECOND,
          kDefaultLatency, mutable_in(GST_STATE_PLAYING)));
  g_object_class_install_property(klass, DUPLEX_PROP_IS_LIVE,
      g_param_spec_boolean("is-live", "Is live",
          "Run in live mode (paced by the clock, silence for missing input) even when upstream "
          "is not live or the sink pad is unlinked",
          FALSE, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_BATCH_SIZE,
      g_param_spec_uint("batch-size", "Batch size",
          "Conversations stepped together: above 1, the elements of this process with the same "
          "model, device, dtype, sampling and batch size share one batched model step of this "
          "many slots (its memory taken up front); 1 = a conversation of its own",
          1, 1024, 1, mutable_in(GST_STATE_READY)));
}

void install_text(GObjectClass *klass) {
  const DuplexSettings d;
  g_object_class_install_property(klass, DUPLEX_PROP_TEXT_UNIT,
      g_param_spec_enum("text-unit", "Text unit",
          "What one text_src buffer (and one personaplex-word message: always a word) holds",
          GST_TYPE_PERSONAPLEX_TEXT_UNIT, d.text_unit, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_TEXT_PAUSE,
      g_param_spec_uint64("text-pause", "Text pause",
          "Time without a new word, in nanoseconds, after which the last word (and a cue) ends",
          GST_MSECOND, 60 * GST_SECOND, d.text_pause, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_CUE_MAX_CHARS,
      g_param_spec_uint("cue-max-chars", "Cue line length",
          "text-unit=cue: most characters in a line of a cue", 8, 1000, d.cue_max_chars,
          mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_CUE_MAX_LINES,
      g_param_spec_uint("cue-max-lines", "Cue lines", "text-unit=cue: most lines in a cue", 1, 10,
          d.cue_max_lines, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_CUE_MIN_DURATION,
      g_param_spec_uint64("cue-min-duration", "Cue minimum duration",
          "text-unit=cue: a cue shows at least this long, in nanoseconds (the next one waits)", 0,
          60 * GST_SECOND, d.cue_min_duration, mutable_in(GST_STATE_READY)));
  g_object_class_install_property(klass, DUPLEX_PROP_CUE_MAX_DURATION,
      g_param_spec_uint64("cue-max-duration", "Cue maximum duration",
          "text-unit=cue: a cue closes before it would show longer than this, in nanoseconds",
          GST_SECOND, 60 * GST_SECOND, d.cue_max_duration, mutable_in(GST_STATE_READY)));
}

}  // namespace

void settings_install_properties(GObjectClass *klass) {
  install_strings(klass);
  install_sampling(klass);
  install_timing(klass);
  install_text(klass);
}

bool settings_set_property(GstElement *element, DuplexSettings *s, guint id, const GValue *value,
                           GParamSpec *pspec) {
  GST_OBJECT_LOCK(element);
  if (ready_only(id) && GST_STATE(element) > GST_STATE_READY) {
    GST_OBJECT_UNLOCK(element);
    g_warning("%s: property '%s' can only be changed in the NULL or READY state",
              GST_ELEMENT_NAME(element), pspec->name);
    return true;
  }
  bool known = true;
  if (std::string *field = string_field(s, id)) {
    const gchar *text = g_value_get_string(value);
    *field = text ? text : "";
    if (id == DUPLEX_PROP_DEVICE && field->empty()) *field = "auto";
  } else {
    switch (id) {
      case DUPLEX_PROP_SEED: s->seed = g_value_get_uint64(value); break;
      case DUPLEX_PROP_TEMPERATURE: s->temperature = g_value_get_double(value); break;
      case DUPLEX_PROP_TEMPERATURE_TEXT: s->temperature_text = g_value_get_double(value); break;
      case DUPLEX_PROP_TOP_K: s->top_k = g_value_get_uint(value); break;
      case DUPLEX_PROP_TOP_K_TEXT: s->top_k_text = g_value_get_uint(value); break;
      case DUPLEX_PROP_GREEDY: s->greedy = g_value_get_boolean(value); break;
      case DUPLEX_PROP_LATENCY: s->latency = g_value_get_uint64(value); break;
      case DUPLEX_PROP_IS_LIVE: s->is_live = g_value_get_boolean(value); break;
      case DUPLEX_PROP_BATCH_SIZE: s->batch_size = g_value_get_uint(value); break;
      case DUPLEX_PROP_OFFLOAD_LAYERS: s->offload_layers = g_value_get_uint(value); break;
      case DUPLEX_PROP_DTYPE:
        s->dtype = gst_personaplex_enum_nick(GST_TYPE_PERSONAPLEX_DTYPE, g_value_get_enum(value));
        break;
      case DUPLEX_PROP_WEIGHT_FORMAT:
        s->weight_format = gst_personaplex_enum_nick(GST_TYPE_PERSONAPLEX_WEIGHT_FORMAT, g_value_get_enum(value));
        break;
      case DUPLEX_PROP_KV_CACHE:
        s->kv_cache = gst_personaplex_enum_nick(GST_TYPE_PERSONAPLEX_KV_CACHE, g_value_get_enum(value));
        break;
      case DUPLEX_PROP_MIMI_DTYPE:
        s->mimi_dtype = gst_personaplex_enum_nick(GST_TYPE_PERSONAPLEX_CODEC_DTYPE, g_value_get_enum(value));
        break;
      case DUPLEX_PROP_TEXT_UNIT: s->text_unit = GstPersonaPlexTextUnit(g_value_get_enum(value)); break;
      case DUPLEX_PROP_TEXT_PAUSE: s->text_pause = g_value_get_uint64(value); break;
      case DUPLEX_PROP_CUE_MAX_CHARS: s->cue_max_chars = g_value_get_uint(value); break;
      case DUPLEX_PROP_CUE_MAX_LINES: s->cue_max_lines = g_value_get_uint(value); break;
      case DUPLEX_PROP_CUE_MIN_DURATION: s->cue_min_duration = g_value_get_uint64(value); break;
      case DUPLEX_PROP_CUE_MAX_DURATION: s->cue_max_duration = g_value_get_uint64(value); break;
      default: known = false;
    }
  }
  const std::string device = s->device;
  GST_OBJECT_UNLOCK(element);
  if (id == DUPLEX_PROP_DEVICE) device_name_check_on_set(element, device);
  return known;
}

bool settings_get_property(GstElement *element, const DuplexSettings *settings, guint id,
                           GValue *value) {
  auto *s = const_cast<DuplexSettings *>(settings);
  bool known = true;
  GST_OBJECT_LOCK(element);
  if (const std::string *field = string_field(s, id)) {
    g_value_set_string(value, field->empty() ? nullptr : field->c_str());
  } else {
    switch (id) {
      case DUPLEX_PROP_SEED: g_value_set_uint64(value, s->seed); break;
      case DUPLEX_PROP_TEMPERATURE: g_value_set_double(value, s->temperature); break;
      case DUPLEX_PROP_TEMPERATURE_TEXT: g_value_set_double(value, s->temperature_text); break;
      case DUPLEX_PROP_TOP_K: g_value_set_uint(value, s->top_k); break;
      case DUPLEX_PROP_TOP_K_TEXT: g_value_set_uint(value, s->top_k_text); break;
      case DUPLEX_PROP_GREEDY: g_value_set_boolean(value, s->greedy); break;
      case DUPLEX_PROP_LATENCY: g_value_set_uint64(value, s->latency); break;
      case DUPLEX_PROP_IS_LIVE: g_value_set_boolean(value, s->is_live); break;
      case DUPLEX_PROP_BATCH_SIZE: g_value_set_uint(value, s->batch_size); break;
      case DUPLEX_PROP_OFFLOAD_LAYERS: g_value_set_uint(value, s->offload_layers); break;
      case DUPLEX_PROP_DTYPE:
        g_value_set_enum(value, gst_personaplex_enum_value(GST_TYPE_PERSONAPLEX_DTYPE, s->dtype.c_str(), 0));
        break;
      case DUPLEX_PROP_WEIGHT_FORMAT:
        g_value_set_enum(value,
            gst_personaplex_enum_value(GST_TYPE_PERSONAPLEX_WEIGHT_FORMAT, s->weight_format.c_str(), 0));
        break;
      case DUPLEX_PROP_KV_CACHE:
        g_value_set_enum(value, gst_personaplex_enum_value(GST_TYPE_PERSONAPLEX_KV_CACHE, s->kv_cache.c_str(), 0));
        break;
      case DUPLEX_PROP_MIMI_DTYPE:
        g_value_set_enum(value, gst_personaplex_enum_value(GST_TYPE_PERSONAPLEX_CODEC_DTYPE, s->mimi_dtype.c_str(), 0));
        break;
      case DUPLEX_PROP_TEXT_UNIT: g_value_set_enum(value, s->text_unit); break;
      case DUPLEX_PROP_TEXT_PAUSE: g_value_set_uint64(value, s->text_pause); break;
      case DUPLEX_PROP_CUE_MAX_CHARS: g_value_set_uint(value, s->cue_max_chars); break;
      case DUPLEX_PROP_CUE_MAX_LINES: g_value_set_uint(value, s->cue_max_lines); break;
      case DUPLEX_PROP_CUE_MIN_DURATION: g_value_set_uint64(value, s->cue_min_duration); break;
      case DUPLEX_PROP_CUE_MAX_DURATION: g_value_set_uint64(value, s->cue_max_duration); break;
      default: known = false;
    }
  }
  GST_OBJECT_UNLOCK(element);
  return known;
}

DuplexSettings settings_copy(GstElement *element, const DuplexSettings *settings) {
  GST_OBJECT_LOCK(element);
  DuplexSettings copy = *settings;
  GST_OBJECT_UNLOCK(element);
  return copy;
}

std::string settings_device(const DuplexSettings &s) {
  if (s.device != "auto") return s.device;
  return at::hasCUDA() ? "cuda" : "cpu";
}

at::ScalarType settings_dtype(const DuplexSettings &s, const at::Device &device) {
  if (s.dtype == "auto") return personaplex::default_dtype(device);
  return personaplex::parse_dtype(s.dtype);
}

at::ScalarType settings_mimi_dtype(const DuplexSettings &s) {
  return s.mimi_dtype == "auto" ? at::kFloat : personaplex::parse_dtype(s.mimi_dtype);
}

personaplex::text::TextTrackOptions settings_text_options(const DuplexSettings &s) {
  personaplex::text::TextTrackOptions o;
  switch (s.text_unit) {
    case GST_PERSONAPLEX_TEXT_UNIT_PIECE: o.unit = personaplex::text::TextUnit::kPiece; break;
    case GST_PERSONAPLEX_TEXT_UNIT_CUE: o.unit = personaplex::text::TextUnit::kCue; break;
    default: o.unit = personaplex::text::TextUnit::kWord; break;
  }
  o.pause = gint64(s.text_pause);
  o.cue.max_chars = s.cue_max_chars;
  o.cue.max_lines = s.cue_max_lines;
  o.cue.min_duration = gint64(s.cue_min_duration);
  o.cue.max_duration = gint64(s.cue_max_duration);
  return o;
}

personaplex::duplex::SessionOptions settings_session_options(const DuplexSettings &s,
                                                            const std::string &voices_dir) {
  personaplex::duplex::SessionOptions o;
  o.prompt = s.prompt;
  const std::string voice = s.voice.empty() ? personaplex::duplex::default_voice(voices_dir) : s.voice;
  o.voice_path = voice == "none" ? "" : personaplex::duplex::resolve_voice(voice, voices_dir);
  o.seed = s.seed == kRandomSeed ? std::random_device{}() : s.seed;
  o.sampling.greedy = s.greedy;
  o.sampling.temp_audio = s.temperature;
  o.sampling.temp_text = s.temperature_text;
  o.sampling.top_k_audio = s.top_k;
  o.sampling.top_k_text = s.top_k_text;
  o.batch = s.batch_size;
  return o;
}

}  // namespace gstpersonaplex
