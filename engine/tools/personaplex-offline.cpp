// personaplex-offline: one conversation from files, like the reference's
// offline front end. The user's audio (a WAV) is fed frame by frame; the
// agent's audio and text come out.
//
//   personaplex-offline --input-wav user.wav --output-wav agent.wav --output-text text.json
//       [--model-dir DIR] [--lm-weights F] [--lm-config F] [--mimi-weights F]
//       [--mimi-config F] [--tokenizer F] [--voices-dir DIR] [--voice NATF2|FILE.pt|FILE.wav]
//       [--prompt TEXT] [--seed N] [--temperature 0.8] [--temperature-text 0.7]
//       [--top-k 250] [--top-k-text 25] [--greedy] [--device cuda|cpu|cuda:N]
//       [--dtype bfloat16|float32] [--mimi-dtype float32|bfloat16] [--offload-layers N]
//
// The options have the personaplex element's property names; the
// reference's names are accepted too: --voice-prompt (--voice), --text-prompt
// (--prompt), --temp-audio, --temp-text, --topk-audio, --topk-text.
//
// --model-dir holds the released files (model.safetensors,
// tokenizer-e351c8d8-checkpoint125.safetensors, tokenizer_spm_32k_3.model and
// voices/); each file can be given on its own instead. The output WAV (24 kHz,
// float) has the input's length; the JSON is a list of one string per 80 ms
// frame: the text piece, "EPAD" or "PAD". Voice files are made with
// personaplex-voice.
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "duplex/duplex_model.h"
#include "duplex/model_files.h"
#include "duplex/session.h"
#include "duplex/voice_resolver.h"
#include "audio/resample.h"
#include "audio/wav.h"
#include "text/tokenizer.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

const char *kDefaultPrompt =
    "You are a wise and friendly teacher. Answer questions or provide advice in a clear and "
    "engaging way.";

using Options = tools::CommandLine;

Options parse(int argc, char **argv) {
  Options o("personaplex-offline",
            "usage: personaplex-offline --input-wav F --output-wav F --output-text F\n"
            "  [--model-dir DIR] [--lm-weights F] [--lm-config F] [--mimi-weights F]\n"
            "  [--mimi-config F] [--tokenizer F] [--voices-dir DIR] [--voice NAME|FILE]\n"
            "  [--prompt TEXT] [--seed N] [--temperature T] [--temperature-text T] [--top-k K]\n"
            "  [--top-k-text K] [--greedy] [--device cuda|cpu|cuda:N] [--dtype bfloat16|float32]\n"
            "  [--mimi-dtype float32|bfloat16] [--offload-layers N]\n"
            "The reference's names work too: --voice-prompt, --text-prompt, --temp-audio,\n"
            "--temp-text, --topk-audio, --topk-text.\n");
  o.parse(argc, argv,
          {"input-wav", "output-wav", "output-text", "model-dir", "lm-weights", "lm-config", "mimi-weights",
           "mimi-config", "tokenizer", "voices-dir", "voice", "prompt", "seed", "temp-audio", "temp-text",
           "topk-audio", "topk-text", "device", "dtype", "mimi-dtype", "offload-layers", "temperature", "temperature-text", "top-k",
           "top-k-text", "voice-prompt", "text-prompt"},
          {"greedy"});
  o.require({"input-wav", "output-wav", "output-text"});
  return o;
}

// The element's name for an option, else the reference's.
std::string either(const Options &o, const char *name, const char *reference, const std::string &fallback = "") {
  return o.has(name) ? o.get(name) : o.get(reference, fallback);
}

double either_number(const Options &o, const char *name, const char *reference, double fallback) {
  return o.has(name) ? o.number(name, fallback) : o.number(reference, fallback);
}

void warn(const std::string &w) { std::fprintf(stderr, "personaplex-offline: warning: %s\n", w.c_str()); }

bool is_file(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

duplex::ModelFiles model_files(const Options &o) {
  duplex::ModelPaths p;
  p.model_dir = o.get("model-dir");
  p.lm_weights = o.get("lm-weights");
  p.lm_config = o.get("lm-config");
  p.mimi_weights = o.get("mimi-weights");
  p.mimi_config = o.get("mimi-config");
  p.tokenizer = o.get("tokenizer");
  p.voices_dir = o.get("voices-dir");
  return duplex::resolve_model_files(p);
}

duplex::SessionOptions session_options(const Options &o, const duplex::ModelFiles &files) {
  duplex::SessionOptions s;
  s.prompt = either(o, "prompt", "text-prompt", kDefaultPrompt);
  // A file given as it is (also without a directory part), else a name from the voices dir.
  std::string voice = either(o, "voice", "voice-prompt");
  if (voice.empty()) voice = duplex::default_voice(files.voices_dir);
  s.voice_path = is_file(voice) ? voice : duplex::resolve_voice(voice, files.voices_dir);
  const double seed = o.number("seed", -1);
  s.seed = seed < 0 ? std::random_device{}() : uint64_t(seed);
  s.sampling.greedy = o.flag("greedy");
  s.sampling.temp_audio = either_number(o, "temperature", "temp-audio", 0.8);
  s.sampling.temp_text = either_number(o, "temperature-text", "temp-text", 0.7);
  s.sampling.top_k_audio = int64_t(either_number(o, "top-k", "topk-audio", 250));
  s.sampling.top_k_text = int64_t(either_number(o, "top-k-text", "topk-text", 25));
  return s;
}

// The reference's per-frame transcript entry.
std::string frame_text(const duplex::FrameResult &r) {
  if (r.text_id == text::kEndOfPadding) return "EPAD";
  if (r.text_id == text::kPad) return "PAD";
  return r.text;
}

// A one-line progress bar, only when stderr is a terminal.
void progress(int64_t done, int64_t total) {
  static const bool tty = isatty(fileno(stderr));
  if (!tty) return;
  const int width = 40, filled = int(width * done / std::max<int64_t>(total, 1));
  std::fprintf(stderr, "\r[%s%s] %lld/%lld frames", std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), (long long)done, (long long)total);
  if (done == total) std::fputc('\n', stderr);
}

int run(const Options &o) {
  const at::Device device = parse_device(o.get("device", at::hasCUDA() ? "cuda" : "cpu"));
  const at::ScalarType dtype =
      o.get("dtype").empty() ? default_dtype(device) : parse_dtype(o.get("dtype"));
  const duplex::ModelFiles files = model_files(o);
  duplex::ModelOptions model;
  model.lm_dtype = dtype;
  model.mimi_dtype = parse_dtype(o.get("mimi-dtype", "float32"));
  model.host_layers = o.count("offload-layers", 0);
  duplex::Session session(duplex::DuplexModel::acquire(files, device, model),
                          session_options(o, files), warn);
  session.start();

  audio::Wav in = audio::read_wav(o.get("input-wav"));
  if (in.frames() == 0) throw Error(o.get("input-wav") + ": no audio");
  const std::vector<float> user = audio::resample(in.channel(0), in.sample_rate, session.sample_rate());
  const int64_t F = session.frame_size(), frames = (int64_t(user.size()) + F - 1) / F;
  std::vector<float> out_pcm;
  nlohmann::json texts = nlohmann::json::array();
  for (int64_t f = 0; f < frames; ++f) {
    const size_t n = std::min<size_t>(size_t(F), user.size() - size_t(f * F));
    duplex::FrameResult r = session.process(user.data() + f * F, n);
    out_pcm.insert(out_pcm.end(), r.pcm.begin(), r.pcm.end());
    texts.push_back(frame_text(r));
    progress(f + 1, frames);
  }
  out_pcm.resize(user.size(), 0.0f);  // the input's length
  audio::write_wav(o.get("output-wav"), out_pcm, session.sample_rate());
  std::ofstream(o.get("output-text")) << texts.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("personaplex-offline", [&] { return run(parse(argc, argv)); });
}
