#include "conversation.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "voices.h"

namespace ppserver {
namespace {

const std::string *field(const std::map<std::string, std::string> &fields, const char *name) {
  auto it = fields.find(name);
  return it == fields.end() ? nullptr : &it->second;
}

bool parse_double(const std::string &s, double lo, double hi, double *out) {
  if (s.empty() || s.size() > 32) return false;
  char *end = nullptr;
  errno = 0;
  const double v = g_ascii_strtod(s.c_str(), &end);
  if (errno || *end || !std::isfinite(v) || v < lo || v > hi) return false;
  *out = v;
  return true;
}

bool parse_int(const std::string &s, int64_t lo, int64_t hi, int64_t *out) {
  if (s.empty() || s.size() > 24) return false;
  char *end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || *end || v < lo || v > hi) return false;
  *out = v;
  return true;
}

void set_if(GstElement *e, const char *property, const std::string &value) {
  if (!value.empty()) g_object_set(e, property, value.c_str(), nullptr);
}

}  // namespace

std::string read_conversation(const Config &config, const std::map<std::string, std::string> &fields,
                              bool require_prompts, Conversation *out) {
  Conversation c;
  for (const char *name : {"text_prompt", "voice_prompt"})
    if (require_prompts && !field(fields, name)) return std::string("missing ") + name;
  const std::string *prompt = field(fields, "text_prompt");
  c.prompt = prompt ? *prompt : config.prompt;
  if (!g_utf8_validate(c.prompt.data(), c.prompt.size(), nullptr)) return "text_prompt is not UTF-8";
  if (g_utf8_strlen(c.prompt.c_str(), -1) > config.max_prompt_chars)
    return "text_prompt is longer than " + std::to_string(config.max_prompt_chars) + " characters";

  const std::string *voice = field(fields, "voice_prompt");
  if (voice && !voice->empty()) {
    std::string why;
    c.voice = find_voice(config.voices_dir, *voice, &why);
    if (c.voice.empty()) return "voice_prompt: " + why;
  } else {
    c.voice = config.voice;
  }

  if (const std::string *s = field(fields, "seed")) {
    int64_t seed = 0;
    if (*s == "-1") {
      c.seed = G_MAXUINT64;
    } else if (parse_int(*s, 0, G_MAXINT64, &seed)) {
      c.seed = static_cast<uint64_t>(seed);
    } else {
      return "seed must be a non-negative integer or -1";
    }
    c.has_seed = true;
  }
  struct Temperature {
    const char *name;
    double *value;
  };
  for (const Temperature &t : {Temperature{"audio_temperature", &c.temperature},
                               Temperature{"text_temperature", &c.temperature_text}}) {
    const std::string *s = field(fields, t.name);
    if (s && !parse_double(*s, 0.0, 10.0, t.value)) return std::string(t.name) + " must be a number from 0 to 10";
  }
  struct TopK {
    const char *name;
    int64_t *value;
  };
  for (const TopK &k : {TopK{"audio_topk", &c.top_k}, TopK{"text_topk", &c.top_k_text}}) {
    const std::string *s = field(fields, k.name);
    if (s && !parse_int(*s, 1, G_MAXINT, k.value)) return std::string(k.name) + " must be a positive integer";
  }
  *out = c;
  return "";
}

void set_model_properties(GstElement *e, const Config &config) {
  const ModelFiles &m = config.model;
  set_if(e, "model-dir", m.model_dir);
  set_if(e, "lm-weights", m.lm_weights);
  set_if(e, "lm-config", m.lm_config);
  set_if(e, "mimi-weights", m.mimi_weights);
  set_if(e, "mimi-config", m.mimi_config);
  set_if(e, "tokenizer", m.tokenizer);
  set_if(e, "voices-dir", config.voices_dir);
  set_if(e, "device", m.device);
  // Enum properties from their nicks: a wrong name is an error at start.
  if (!m.weight_format.empty()) gst_util_set_object_arg(G_OBJECT(e), "weight-format", m.weight_format.c_str());
  if (!m.kv_cache.empty()) gst_util_set_object_arg(G_OBJECT(e), "kv-cache", m.kv_cache.c_str());
  if (!m.mimi_dtype.empty()) gst_util_set_object_arg(G_OBJECT(e), "mimi-dtype", m.mimi_dtype.c_str());
  if (m.offload_layers > 0) g_object_set(e, "offload-layers", guint(m.offload_layers), nullptr);
}

void configure_personaplex(GstElement *e, const Config &config, const Conversation &c, bool live) {
  set_model_properties(e, config);
  g_object_set(e, "is-live", live, "voice", c.voice.c_str(), "prompt", c.prompt.c_str(), nullptr);
  if (live && config.latency_ns >= 0) g_object_set(e, "latency", static_cast<guint64>(config.latency_ns), nullptr);
  // Without a seed each call samples differently, as people expect of a service.
  g_object_set(e, "seed", static_cast<guint64>(c.has_seed ? c.seed : G_MAXUINT64), nullptr);
  if (c.temperature >= 0) g_object_set(e, "temperature", c.temperature, nullptr);
  if (c.temperature_text >= 0) g_object_set(e, "temperature-text", c.temperature_text, nullptr);
  if (c.top_k > 0) g_object_set(e, "top-k", static_cast<guint>(c.top_k), nullptr);
  if (c.top_k_text > 0) g_object_set(e, "top-k-text", static_cast<guint>(c.top_k_text), nullptr);
  // Batched calls share the server's sampling: one with its own steps alone.
  const bool own_sampling = c.temperature >= 0 || c.temperature_text >= 0 || c.top_k > 0 || c.top_k_text > 0;
  if (config.batch && config.max_sessions > 1 && !own_sampling)
    g_object_set(e, "batch-size", static_cast<guint>(config.max_sessions), nullptr);
}

}  // namespace ppserver
