// The personaplex element's properties: which model files, device, voice,
// prompt, sampling and timing. The struct is guarded by the element's object
// lock; copy it out (settings_copy()) before use, never hold the lock across
// model calls or pushes.
#pragma once

#include <gst/gst.h>

#include <string>

#include "duplex/model_files.h"
#include "duplex/session.h"
#include "gstpersonaplexenums.h"
#include "text/text_track.h"

namespace gstpersonaplex {

enum : guint {
  DUPLEX_PROP_0,
  DUPLEX_PROP_MODEL_DIR,
  DUPLEX_PROP_LM_WEIGHTS,
  DUPLEX_PROP_LM_CONFIG,
  DUPLEX_PROP_MIMI_WEIGHTS,
  DUPLEX_PROP_MIMI_CONFIG,
  DUPLEX_PROP_TOKENIZER,
  DUPLEX_PROP_VOICES_DIR,
  DUPLEX_PROP_DEVICE,
  DUPLEX_PROP_DTYPE,
  DUPLEX_PROP_VOICE,
  DUPLEX_PROP_PROMPT,
  DUPLEX_PROP_SEED,
  DUPLEX_PROP_TEMPERATURE,
  DUPLEX_PROP_TEMPERATURE_TEXT,
  DUPLEX_PROP_TOP_K,
  DUPLEX_PROP_TOP_K_TEXT,
  DUPLEX_PROP_GREEDY,
  DUPLEX_PROP_LATENCY,
  DUPLEX_PROP_IS_LIVE,
  DUPLEX_PROP_BATCH_SIZE,
  DUPLEX_PROP_WEIGHT_FORMAT,
  DUPLEX_PROP_KV_CACHE,
  DUPLEX_PROP_MIMI_DTYPE,
  DUPLEX_PROP_OFFLOAD_LAYERS,
  DUPLEX_PROP_TEXT_UNIT,
  DUPLEX_PROP_TEXT_PAUSE,
  DUPLEX_PROP_CUE_MAX_CHARS,
  DUPLEX_PROP_CUE_MAX_LINES,
  DUPLEX_PROP_CUE_MIN_DURATION,
  DUPLEX_PROP_CUE_MAX_DURATION,
};

// A seed of this value draws a fresh random seed at every (re)start.
constexpr guint64 kRandomSeed = G_MAXUINT64;
constexpr GstClockTime kDefaultLatency = 80 * GST_MSECOND;

struct DuplexSettings {
  personaplex::duplex::ModelPaths paths;
  std::string device = "auto";
  std::string dtype = "auto";
  std::string weight_format = "auto";
  std::string kv_cache = "auto";
  std::string mimi_dtype = "auto";
  guint offload_layers = 0;  // LM layers kept in host memory
  std::string voice;  // "": the voices directory's default; "none": no voice prompt
  std::string prompt;
  guint64 seed = 0;
  gdouble temperature = 0.8;
  gdouble temperature_text = 0.7;
  guint top_k = 250;
  guint top_k_text = 25;
  gboolean greedy = FALSE;
  GstClockTime latency = kDefaultLatency;  // compute budget per frame
  gboolean is_live = FALSE;
  guint batch_size = 1;  // > 1: step in a batch shared by the process's elements
  GstPersonaPlexTextUnit text_unit = GST_PERSONAPLEX_TEXT_UNIT_WORD;
  GstClockTime text_pause = 800 * GST_MSECOND;
  guint cue_max_chars = 42;
  guint cue_max_lines = 2;
  GstClockTime cue_min_duration = 1200 * GST_MSECOND;
  GstClockTime cue_max_duration = 6 * GST_SECOND;
};

void settings_install_properties(GObjectClass *klass);
// false when `prop_id` is not one of these properties. Model files, device
// and is-live only change in NULL or READY (a warning otherwise).
bool settings_set_property(GstElement *element, DuplexSettings *settings, guint prop_id,
                           const GValue *value, GParamSpec *pspec);
bool settings_get_property(GstElement *element, const DuplexSettings *settings, guint prop_id,
                           GValue *value);
DuplexSettings settings_copy(GstElement *element, const DuplexSettings *settings);

// "auto" -> "cuda" when a GPU is usable, else "cpu"; other values unchanged.
std::string settings_device(const DuplexSettings &settings);
// The LM's dtype on `device`: "auto" -> bfloat16 on CUDA, float32 on the CPU;
// throws personaplex::Error naming a dtype it does not know.
at::ScalarType settings_dtype(const DuplexSettings &settings, const at::Device &device);
// Mimi's dtype: "auto" -> float32 (the reference's codes), else the named one.
at::ScalarType settings_mimi_dtype(const DuplexSettings &settings);
// The text stream the settings ask for (times in nanoseconds).
personaplex::text::TextTrackOptions settings_text_options(const DuplexSettings &settings);

// The session options the settings give, with the voice file already
// resolved against `voices_dir` (throws personaplex::Error when it cannot be).
personaplex::duplex::SessionOptions settings_session_options(const DuplexSettings &settings,
                                                            const std::string &voices_dir);

}  // namespace gstpersonaplex
