// personaplex-offline: one conversation from files, like the reference's
// offline front end. The user's audio (a WAV) is fed frame by frame; the
// agent's audio and text come out.
//
//   personaplex-offline --input-wav user.wav --output-wav agent.wav --output-text text.json
//       [--model-dir DIR | --lm-weights F --mimi-weights F --tokenizer F]
//       [--lm-config F] [--mimi-config F] [--voice NATF2.pt|voice.wav] [--save-voice F.pt]
//       [--prompt TEXT] [--seed N] [--temp-audio 0.8] [--temp-text 0.7]
//       [--topk-audio 250] [--topk-text 25] [--greedy] [--device cuda|cpu]
//
// --model-dir holds the released files: model.safetensors,
// tokenizer-e351c8d8-checkpoint125.safetensors, tokenizer_spm_32k_3.model and
// voices/. The output WAV (24 kHz, float) has the input's length; the JSON is
// a list of one string per 80 ms frame: the text piece, "EPAD" or "PAD".
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm/resample.h"
#include "lm/voice.h"
#include "lm/voice_audio.h"
#include "lm/wav.h"
#include "mimi/mimi.h"
#include "mimi/state.h"
#include "text/tokenizer.h"

using namespace personaplex;

namespace {

const char *kDefaultPrompt =
    "You are a wise and friendly teacher. Answer questions or provide advice in a clear and "
    "engaging way.";

struct Options {
  std::map<std::string, std::string> values;
  bool greedy = false;
  std::string get(const std::string &key, const std::string &fallback = "") const {
    auto it = values.find(key);
    return it == values.end() ? fallback : it->second;
  }
};

[[noreturn]] void usage(const std::string &why) {
  std::fprintf(stderr,
               "personaplex-offline: %s\n"
               "usage: personaplex-offline --input-wav F --output-wav F --output-text F\n"
               "  [--model-dir DIR | --lm-weights F --mimi-weights F --tokenizer F]\n"
               "  [--lm-config F] [--mimi-config F] [--voice NAME.pt|FILE.wav] [--save-voice F.pt]\n"
               "  [--prompt TEXT] [--seed N] [--temp-audio T] [--temp-text T] [--topk-audio K]\n"
               "  [--topk-text K] [--greedy] [--device cuda|cpu|cuda:N] [--dtype bfloat16|float32]\n",
               why.c_str());
  std::exit(2);
}

Options parse(int argc, char **argv) {
  static const std::vector<std::string> known = {
      "input-wav", "output-wav", "output-text", "model-dir", "lm-weights", "lm-config", "mimi-weights",
      "mimi-config", "tokenizer", "voice", "save-voice", "prompt", "seed", "temp-audio", "temp-text",
      "topk-audio", "topk-text", "device", "dtype"};
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--greedy") {
      o.greedy = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || std::find(known.begin(), known.end(), a.substr(2)) == known.end())
      usage("unknown option " + a);
    if (i + 1 >= argc) usage("missing value after " + a);
    o.values[a.substr(2)] = argv[++i];
  }
  for (const char *required : {"input-wav", "output-wav", "output-text"})
    if (!o.values.count(required)) usage(std::string("--") + required + " is required");
  return o;
}

bool exists(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

// An explicit file, or the released name inside --model-dir.
std::string model_file(const Options &o, const std::string &key, const std::string &released) {
  std::string v = o.get(key);
  if (!v.empty()) return v;
  std::string dir = o.get("model-dir");
  if (dir.empty()) usage("--" + key + " or --model-dir is required");
  return dir + "/" + released;
}

std::string voice_path(const Options &o) {
  std::string v = o.get("voice");
  if (v.empty() || exists(v)) return v;
  std::string in_dir = o.get("model-dir") + "/voices/" + v;
  if (!o.get("model-dir").empty() && exists(in_dir)) return in_dir;
  throw Error(v + ": voice not found");
}

double number(const Options &o, const std::string &key, double fallback) {
  std::string v = o.get(key);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    double d = std::stod(v, &used);
    if (used == v.size()) return d;
  } catch (const std::exception &) {
  }
  usage("--" + key + " needs a number, got '" + v + "'");
}

void warn(const std::string &w) { std::fprintf(stderr, "personaplex-offline: warning: %s\n", w.c_str()); }

lm::Prompt make_prompt(const Options &o, const lm::LmConfig &config, const mimi::Mimi &mimi,
                       const text::Tokenizer &tok) {
  lm::Prompt p;
  const std::string voice = voice_path(o);
  if (voice.size() > 3 && voice.compare(voice.size() - 3, 3, ".pt") == 0)
    p.voice.stored = lm::load_voice_file(voice, config);
  else if (!voice.empty())
    p.voice.codes = lm::encode_voice(mimi, lm::load_voice_audio(voice, mimi.sample_rate(), warn));
  p.text_tokens = text::encode_role_prompt(tok, o.get("prompt", kDefaultPrompt));
  return p;
}

std::string frame_text(const text::Tokenizer &tok, int64_t id) {
  if (id == text::kEndOfPadding) return "EPAD";
  if (id == text::kPad) return "PAD";
  return tok.text(id);
}

int run(const Options &o) {
  const at::Device device = parse_device(o.get("device", at::hasCUDA() ? "cuda" : "cpu"));
  const at::ScalarType dtype = o.get("dtype").empty() ? default_dtype(device) : parse_dtype(o.get("dtype"));
  auto mimi = mimi::Mimi::load(model_file(o, "mimi-weights", "tokenizer-e351c8d8-checkpoint125.safetensors"),
                               o.get("mimi-config"), device, at::kFloat);
  auto model = lm::LmModel::load(model_file(o, "lm-weights", "model.safetensors"), o.get("lm-config"),
                                 device, dtype);
  text::Tokenizer tok(model_file(o, "tokenizer", "tokenizer_spm_32k_3.model"));

  lm::ConversationOptions copts;
  const double seed = number(o, "seed", -1);
  copts.seed = seed < 0 ? std::random_device{}() : uint64_t(seed);
  copts.sampling.greedy = o.greedy;
  copts.sampling.temp_audio = number(o, "temp-audio", 0.8);
  copts.sampling.temp_text = number(o, "temp-text", 0.7);
  copts.sampling.top_k_audio = int64_t(number(o, "topk-audio", 250));
  copts.sampling.top_k_text = int64_t(number(o, "topk-text", 25));
  lm::Conversation conv(model, copts);

  lm::Prompt prompt = make_prompt(o, model->config(), *mimi, tok);
  const bool save = !o.get("save-voice").empty();
  if (save && !prompt.voice.codes.defined()) usage("--save-voice needs a --voice audio file");
  lm::VoiceEmbeddings saved = lm::run_prompts(conv, prompt, warn, save);
  if (save) lm::save_voice_file(o.get("save-voice"), saved);

  lm::Wav in = lm::read_wav(o.get("input-wav"));
  if (in.frames() == 0) throw Error(o.get("input-wav") + ": no audio");
  std::vector<float> user = lm::resample(in.channel(0), in.sample_rate, mimi->sample_rate());
  const size_t user_samples = user.size();
  const int64_t F = mimi->frame_size(), frames = (int64_t(user.size()) + F - 1) / F;
  user.resize(size_t(frames * F), 0.0f);
  auto enc = mimi->new_state(1), dec = mimi->new_state(1);
  std::vector<float> out_pcm;
  nlohmann::json texts = nlohmann::json::array();
  for (int64_t f = 0; f < frames; ++f) {
    at::Tensor pcm = at::from_blob(user.data() + f * F, {1, 1, F}, at::kFloat);
    at::Tensor codes = mimi->encode_frame(pcm, *enc).to(at::kCPU).view({-1});
    auto step = conv.step_user({codes.data_ptr<int64_t>(), codes.data_ptr<int64_t>() + codes.numel()});
    if (!step) continue;
    at::Tensor agent = mimi->decode_frame(step->agent_codes().to(device), *dec).to(at::kCPU).contiguous();
    out_pcm.insert(out_pcm.end(), agent.data_ptr<float>(), agent.data_ptr<float>() + agent.numel());
    texts.push_back(frame_text(tok, step->text()));
  }
  out_pcm.resize(user_samples, 0.0f);  // the input's length
  lm::write_wav(o.get("output-wav"), out_pcm, mimi->sample_rate());
  std::ofstream(o.get("output-text")) << texts.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "personaplex-offline: %s\n", e.what());
    return 1;
  }
}
