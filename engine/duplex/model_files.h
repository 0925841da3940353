// Which files make a PersonaPlex model: a model directory holding the
// released names, each file overridable one by one. Resolution checks that
// every file exists and names the missing one and the role it plays.
#pragma once

#include <string>

namespace personaplex::duplex {

// The released names inside a model directory.
constexpr const char *kLmWeightsName = "model.safetensors";
constexpr const char *kMimiWeightsName = "tokenizer-e351c8d8-checkpoint125.safetensors";
constexpr const char *kTokenizerName = "tokenizer_spm_32k_3.model";
constexpr const char *kVoicesDirName = "voices";
// Optional configs (reference constructor arguments); without them the
// released sizes apply.
constexpr const char *kLmConfigName = "lm_config.json";
constexpr const char *kMimiConfigName = "mimi_config.json";

// What a user names: a directory and per-file overrides; "" = not given.
struct ModelPaths {
  std::string model_dir;
  std::string lm_weights;
  std::string lm_config;
  std::string mimi_weights;
  std::string mimi_config;
  std::string tokenizer;
  std::string voices_dir;
};

// Resolved files; configs and the voices directory may be "" (none).
struct ModelFiles {
  std::string lm_weights;
  std::string lm_config;
  std::string mimi_weights;
  std::string mimi_config;
  std::string tokenizer;
  std::string voices_dir;
};

// An override wins over the directory's file. Required files (LM weights,
// Mimi weights, tokenizer) must exist; an optional one must exist when given
// explicitly. Throws Error naming the file and its role otherwise.
ModelFiles resolve_model_files(const ModelPaths &paths);

// A file's identity for sharing loaded models: its canonical path, size and
// modification time, so a file replaced on disk is loaded anew; "" for "".
std::string file_identity(const std::string &path);

}  // namespace personaplex::duplex
