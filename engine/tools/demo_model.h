// The demo model: a tiny configuration of random weights, in the released
// layout, that personaplex-make-model --demo writes once into the user's
// cache directory. It lets the pipelines and the server run on a fresh
// checkout, on a CPU, without the gated download; it speaks noise.
#pragma once

#include <cstdint>
#include <string>

namespace personaplex::tools {

// The LM's and Mimi's sizes, as config.json texts in the reference's names.
extern const char *const kDemoLmConfigJson;
extern const char *const kDemoMimiConfigJson;

// Fixed, so that every demo model is the same.
constexpr uint64_t kDemoSeed = 1;
// The voice file's name: the default voice of the scripts and the server.
constexpr const char *kDemoVoiceName = "NATF2.pt";

// $XDG_CACHE_HOME/gst-personaplex/demo-model-N (or ~/.cache/...): N changes
// with the preset, so an old cache is not taken for a new one.
std::string demo_model_dir();

// mkdir -p; throws Error naming the directory when it cannot be made.
void make_directories(const std::string &path);

}  // namespace personaplex::tools
