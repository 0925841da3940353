// personaplex-voice: voice prompt files.
//
//   personaplex-voice make --input voice.wav --output NAME.pt
//       [--model-dir DIR] [--lm-weights F] [--lm-config F] [--mimi-weights F] [--mimi-config F]
//       [--device auto|cpu|cuda|cuda:N]
//   personaplex-voice list DIR [--lm-config F]
//
// make: the wav is brought to 24 kHz and -24 LUFS, encoded by Mimi and run
// through the LM's voice phase, exactly as a conversation with that wav as
// its voice starts; the model inputs of that phase and the token ring after
// it are saved in the released .pt format (which the reference loads too).
// Files default to the released names inside --model-dir.
//
// list: every .pt and .wav voice in DIR with its kind, the model steps its
// voice phase takes, its duration and sizes. .pt files are checked against
// --lm-config (default: DIR/../lm_config.json when present, else the released
// sizes). A file that cannot be used is listed with the reason; the exit
// status is then 1.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "duplex/model_files.h"
#include "duplex/voice_resolver.h"
#include "io/safetensors.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm/voice.h"
#include "duplex/voice_audio.h"
#include "audio/wav.h"
#include "mimi/config.h"
#include "mimi/mimi.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

const char *kUsage =
    "usage: personaplex-voice make --input VOICE.wav --output NAME.pt\n"
    "           [--model-dir DIR] [--lm-weights F] [--lm-config F] [--mimi-weights F]\n"
    "           [--mimi-config F] [--device auto|cpu|cuda|cuda:N]\n"
    "       personaplex-voice list DIR [--lm-config F]\n";

using Options = tools::CommandLine;

// The options of a command: `--name value` among `known`, other words
// positional.
Options parse(int argc, char **argv, const std::vector<std::string> &known) {
  Options o("personaplex-voice", kUsage);
  o.parse(argc, argv, known, {}, 2, /*positional=*/true);
  return o;
}

bool is_file(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A file given by its option, else the released name in --model-dir ("" for
// an optional config that is absent).
std::string model_file(const Options &o, const std::string &key, const char *released, bool required) {
  const std::string given = o.get(key), dir = o.get("model-dir");
  if (!given.empty()) return given;
  const std::string in_dir = dir.empty() ? "" : dir + "/" + released;
  if (required && in_dir.empty()) o.fail("--" + key + " or --model-dir is required");
  if (!required && !is_file(in_dir)) return "";
  return in_dir;
}

void warn(const std::string &w) { std::fprintf(stderr, "personaplex-voice: warning: %s\n", w.c_str()); }

int make(const Options &o) {
  const std::string input = o.get("input"), output = o.get("output");
  if (input.empty() || output.empty()) o.fail("make needs --input and --output");
  const std::string spec = o.get("device");
  const at::Device device = parse_device(spec.empty() || spec == "auto" ? (at::hasCUDA() ? "cuda" : "cpu") : spec);
  auto mimi = mimi::Mimi::load(model_file(o, "mimi-weights", duplex::kMimiWeightsName, true),
                               model_file(o, "mimi-config", duplex::kMimiConfigName, false), device, at::kFloat);
  auto model = lm::LmModel::load(model_file(o, "lm-weights", duplex::kLmWeightsName, true),
                                 model_file(o, "lm-config", duplex::kLmConfigName, false), device,
                                 default_dtype(device));
  // The same steps a conversation with this wav as its voice takes; the
  // voice phase is saved as it runs.
  lm::Prompt prompt;
  prompt.voice.codes = duplex::encode_voice(*mimi, duplex::load_voice_audio(input, mimi->sample_rate(), warn));
  lm::Conversation conv(model, lm::ConversationOptions{});
  const lm::VoiceEmbeddings voice = lm::run_prompts(conv, prompt, warn, /*save_voice=*/true);
  lm::save_voice_file(output, voice);
  std::printf("%s: %lld steps, embeddings %s %s\n", output.c_str(), (long long)voice.embeddings.size(0),
              dtype_name(voice.embeddings.scalar_type()).c_str(),
              shape_string(voice.embeddings.sizes()).c_str());
  return 0;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// One line of the listing: kind, voice steps, duration, sizes.
std::string describe(const std::string &path, const lm::LmConfig &config, const mimi::MimiConfig &mimi) {
  const double frame_s = double(mimi.frame_size()) / double(mimi.sample_rate);
  if (ends_with(path, ".pt")) {
    const lm::VoiceEmbeddings v = lm::load_voice_file(path, config);
    const int64_t steps = v.embeddings.size(0);
    return "pt   steps " + std::to_string(steps) + "  " + seconds(double(steps) * frame_s) + "  embeddings " +
           dtype_name(v.embeddings.scalar_type()) + " " + shape_string(v.embeddings.sizes()) + ", cache " +
           shape_string(v.cache.sizes());
  }
  const audio::Wav wav = audio::read_wav(path);
  if (wav.frames() == 0) throw Error(path + ": no audio");
  const double duration = double(wav.frames()) / double(wav.sample_rate);
  // Frames after resampling; the first only primes the model.
  const auto frames = int64_t(std::ceil(duration * double(mimi.sample_rate) / double(mimi.frame_size()) - 1e-9));
  const int64_t steps = std::max<int64_t>(frames - 1, 0);
  return "wav  steps " + std::to_string(steps) + "  " + seconds(double(steps) * frame_s) + "  audio " +
         seconds(duration) + ", " + std::to_string(wav.sample_rate) + " Hz, " + std::to_string(wav.channels) +
         (wav.channels == 1 ? " channel" : " channels");
}

int list(const std::string &dir, const Options &o) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw Error(dir + ": not a directory");
  std::string config_path = o.get("lm-config");
  if (config_path.empty() && is_file(dir + "/../" + duplex::kLmConfigName))
    config_path = dir + "/../" + duplex::kLmConfigName;
  const lm::LmConfig config = config_path.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(config_path);
  const mimi::MimiConfig mimi;
  const std::vector<std::string> names = duplex::available_voices(dir);
  size_t width = 4;
  for (const auto &n : names) width = std::max(width, n.size());
  int broken = 0;
  for (const auto &name : names) {
    std::string line;
    try {
      line = describe(dir + "/" + name, config, mimi);
    } catch (const std::exception &e) {
      line = std::string(ends_with(name, ".pt") ? "pt" : "wav") + (ends_with(name, ".pt") ? "   " : "  ") +
             "error: " + e.what();
      ++broken;
    }
    std::printf("%-*s  %s\n", int(width), name.c_str(), line.c_str());
  }
  std::printf("%zu voices in %s (dim %lld)%s\n", names.size(), dir.c_str(), (long long)config.dim,
              broken ? (", " + std::to_string(broken) + " unusable").c_str() : "");
  return broken ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
  const Options command_line("personaplex-voice", kUsage);  // before a command's options
  if (argc < 2) command_line.fail("no command");
  const std::string command = argv[1];
  if (command == "-h" || command == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (command != "make" && command != "list") command_line.fail("unknown command " + command);
  return tools::run_main("personaplex-voice", [&] {
    if (command == "make") {
      const Options o = parse(argc, argv,
                              {"input", "output", "model-dir", "lm-weights", "lm-config", "mimi-weights",
                               "mimi-config", "device"});
      if (!o.positional().empty()) o.fail("unexpected argument " + o.positional()[0]);
      return make(o);
    }
    const Options o = parse(argc, argv, {"lm-config"});
    if (o.positional().size() != 1) o.fail("list needs one directory");
    return list(o.positional()[0], o);
  });
}
