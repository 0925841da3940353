// personaplex-make-model: a model directory in the released layout with
// random weights, for any configuration, so that pipelines, demos and tests
// run without the gated download.
//
//   personaplex-make-model --output DIR [--lm-config F] [--mimi-config F]
//       [--tokenizer F] [--seed N] [--lm-dtype bfloat16|float32]
//       [--voice-steps N] [--force]
//   personaplex-make-model --demo [--output DIR]
//
// DIR gets model.safetensors (LM, bf16 by default as released),
// tokenizer-e351c8d8-checkpoint125.safetensors (Mimi, float32),
// tokenizer_spm_32k_3.model (a copy of --tokenizer, or one trained here on
// generated text with the LM's text vocabulary size when this build has
// SentencePiece's trainer), lm_config.json / mimi_config.json when the sizes
// are not the released ones, and voices/RANDOM.pt, a voice of random
// embeddings with the token ring a real voice phase leaves. Configs default
// to the released sizes (a 16.7 GB LM). Same seed, same files.
//
// --demo makes the demo model (demo_model.h: tiny sizes, a fixed seed,
// float32, its voice named NATF2.pt) in the user's cache directory unless
// --output names another, only when it is not there yet, and prints the
// directory on stdout. It is written beside and renamed into place, so a
// program reading it never sees half a model and two runs at once agree.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <ftw.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "demo_model.h"
#include "duplex/model_files.h"
#include "lm/config.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "lm/voice.h"
#include "mimi/config.h"
#include "mimi/random_weights.h"
#include "tool_options.h"

extern char **environ;

using namespace personaplex;

namespace {

constexpr const char *kVoiceName = "RANDOM.pt";
constexpr double kScale = 0.02;

const char *kUsage =
    "usage: personaplex-make-model --output DIR [--lm-config F] [--mimi-config F] [--tokenizer F]\n"
    "           [--seed N] [--lm-dtype bfloat16|float32] [--voice-steps N] [--force]\n"
    "       personaplex-make-model --demo [--output DIR]\n";

using Options = tools::CommandLine;

Options parse(int argc, char **argv) {
  Options o("personaplex-make-model", kUsage);
  o.parse(argc, argv, {"output", "lm-config", "mimi-config", "tokenizer", "seed", "lm-dtype", "voice-steps"},
          {"force", "demo"});
  if (o.flag("demo")) {
    for (const char *fixed : {"lm-config", "mimi-config", "tokenizer", "seed", "lm-dtype", "voice-steps"})
      if (o.has(fixed)) o.fail(std::string("--demo fixes the model: --") + fixed + " does not go with it");
  } else if (o.get("output").empty()) {
    o.fail("--output is required");
  }
  return o;
}

bool exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

void copy_file(const std::string &from, const std::string &to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw Error(from + ": cannot open");
  std::ofstream out(to, std::ios::binary);
  out << in.rdbuf();
  if (!out) throw Error(to + ": cannot write");
}

auto fields(const lm::LmConfig &c) {
  return std::tie(c.dim, c.num_heads, c.num_layers, c.hidden_scale, c.context, c.max_period, c.norm, c.gating,
                  c.text_card, c.existing_text_padding_id, c.card, c.n_q, c.dep_q, c.delays, c.depformer_dim,
                  c.depformer_num_heads, c.depformer_num_layers, c.depformer_dim_feedforward,
                  c.depformer_multi_linear, c.depformer_weights_per_step);
}

// A voice file that fits the model: random input embeddings (of the size
// a sum of kScale-sized embeddings has) and the token ring that a voice
// phase of random codes leaves. The ring only holds the tokens given, so a
// small stand-in LM with the same streams computes it.
void write_voice(const std::string &path, const lm::LmConfig &c, at::ScalarType dtype, int64_t steps,
                 uint64_t seed) {
  lm::LmConfig small = c;
  small.dim = 16;
  small.num_heads = 2;
  small.num_layers = 1;
  small.depformer_dim = 16;
  small.depformer_num_heads = 2;
  small.depformer_num_layers = 1;
  small.depformer_dim_feedforward = 16;
  auto model = std::make_shared<const lm::LmModel>(lm::random_lm_weights(small, at::kCPU, at::kFloat, seed));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed + 1);
  lm::Prompt prompt;
  prompt.voice.codes = at::randint(c.card, {lm::kAudioCodebooks, steps + 1}, gen, at::kLong);
  lm::Conversation conv(model, lm::ConversationOptions{});
  lm::VoiceEmbeddings voice = lm::run_prompts(conv, prompt, {}, /*save_voice=*/true);
  const double sigma = kScale * std::sqrt(double(c.num_streams()));
  voice.embeddings = (at::randn({steps, 1, 1, c.dim}, gen, at::kFloat) * sigma).to(dtype);
  lm::save_voice_file(path, voice);
}

std::string program_dir() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string p(buf, size_t(n));
  return p.substr(0, p.rfind('/'));
}

int run_program(const std::string &program, const std::vector<std::string> &args) {
  std::vector<char *> argv;
  argv.push_back(const_cast<char *>(program.c_str()));
  for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Text for the tokenizer: pseudo-words of random syllables, enough distinct
// ones for `vocab` pieces, and every printable ASCII character when the
// vocabulary has room for them (each character is a piece of its own).
void write_corpus(const std::string &path, int64_t vocab, uint64_t seed) {
  std::ofstream out(path);
  if (vocab >= 256) {
    for (int ch = 33; ch < 127; ++ch) out << char(ch) << ' ';
    out << "\n<system> You are a wise and friendly teacher. <system>\n";
  }
  static const char *onsets[] = {"b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p",
                                 "r", "s", "t", "v", "w", "z", "ch", "sh", "th", "st", "br", "pl"};
  static const char *vowels[] = {"a", "e", "i", "o", "u", "ai", "ea", "ou"};
  std::mt19937_64 rng(seed);
  const int64_t lines = std::max<int64_t>(200, vocab * 2);
  for (int64_t l = 0; l < lines; ++l) {
    for (int w = 0; w < 8; ++w) {
      const int syllables = 1 + int(rng() % 4);
      for (int s = 0; s < syllables; ++s) out << onsets[rng() % 24] << vowels[rng() % 8];
      out << (w == 7 ? ".\n" : " ");
    }
  }
  if (!out) throw Error(path + ": cannot write");
}

// A SentencePiece model of exactly the LM's text vocabulary, with the ids
// PersonaPlex gives a meaning (0 EPAD as unk, 1 BOS, 2 EOS, 3 PAD).
void train_tokenizer(const std::string &dir, const std::string &target, int64_t vocab, uint64_t seed) {
  std::string trainer;
  const std::string own = program_dir() + "/personaplex-spm-train";
  bool key_value = false;
  if (access(own.c_str(), X_OK) == 0) {
    trainer = own;
    key_value = true;
  } else if (run_program("spm_train", {"--help"}) >= 0) {
    trainer = "spm_train";  // Debian's sentencepiece package
  } else {
    throw Error("no --tokenizer given, and no SentencePiece trainer here (this build has none, and "
                "spm_train is not installed): give --tokenizer FILE");
  }
  const std::string corpus = dir + "/.tokenizer-corpus.txt", prefix = dir + "/.tokenizer";
  write_corpus(corpus, vocab, seed);
  const std::vector<std::pair<std::string, std::string>> flags = {
      {"input", corpus},    {"model_prefix", prefix}, {"vocab_size", std::to_string(vocab)},
      {"model_type", "bpe"}, {"character_coverage", "1.0"}, {"unk_id", "0"}, {"bos_id", "1"},
      {"eos_id", "2"},      {"pad_id", "3"},           {"minloglevel", "1"}};
  std::vector<std::string> args;
  for (const auto &f : flags) args.push_back((key_value ? "" : "--") + f.first + "=" + f.second);
  const int rc = run_program(trainer, args);
  std::remove(corpus.c_str());
  std::remove((prefix + ".vocab").c_str());
  if (rc != 0) throw Error(trainer + " failed to train a tokenizer of " + std::to_string(vocab) + " pieces");
  if (std::rename((prefix + ".model").c_str(), target.c_str()) != 0) throw Error(target + ": cannot write");
}

// What a model directory is made of.
struct ModelSpec {
  lm::LmConfig lm_config;
  std::string lm_config_json;  // its text, for lm_config.json
  mimi::MimiConfig mimi_config;
  std::string tokenizer;  // a file to copy, "" to train one
  at::ScalarType dtype = at::kBFloat16;
  uint64_t seed = 0;
  int64_t voice_steps = 12;
  std::string voice_name = kVoiceName;
};

std::string read_text(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_text(const std::string &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw Error(path + ": cannot write");
}

// Writes every file of the model into `dir` (made here when absent).
void write_model(const std::string &dir, const ModelSpec &spec) {
  const lm::LmConfig &lm_config = spec.lm_config;
  const mimi::MimiConfig &mimi_config = spec.mimi_config;
  mkdir(dir.c_str(), 0755);
  mkdir((dir + "/" + duplex::kVoicesDirName).c_str(), 0755);
  if (!exists(dir + "/" + duplex::kVoicesDirName)) throw Error(dir + ": cannot create the directory");

  // Configs only where the sizes differ from the released ones, as the
  // element then needs them.
  const std::string lm_json = dir + "/" + duplex::kLmConfigName, mimi_json = dir + "/" + duplex::kMimiConfigName;
  std::remove(lm_json.c_str());
  std::remove(mimi_json.c_str());
  if (fields(lm_config) != fields(lm::LmConfig::released())) write_text(lm_json, spec.lm_config_json);
  if (mimi_config.to_json() != mimi::MimiConfig().to_json()) write_text(mimi_json, mimi_config.to_json());

  const std::string tokenizer = dir + "/" + duplex::kTokenizerName;
  if (!spec.tokenizer.empty())
    copy_file(spec.tokenizer, tokenizer);
  else
    train_tokenizer(dir, tokenizer, lm_config.text_card, spec.seed);

  mimi::write_random_weights(dir + "/" + duplex::kMimiWeightsName, mimi_config, spec.seed, kScale);
  lm::write_random_lm_weights(dir + "/" + duplex::kLmWeightsName, lm_config, spec.dtype, spec.seed, kScale);
  write_voice(dir + "/" + duplex::kVoicesDirName + "/" + spec.voice_name, lm_config, spec.dtype, spec.voice_steps,
              spec.seed);
}

void check_fit(const lm::LmConfig &lm_config, const mimi::MimiConfig &mimi_config) {
  if (lm_config.card != mimi_config.quantizer.bins || lm_config.user_codebooks() != mimi_config.num_codebooks)
    throw Error("the LM's audio streams (" + std::to_string(lm_config.user_codebooks()) + " codebooks of " +
                std::to_string(lm_config.card) + ") do not fit Mimi's (" +
                std::to_string(mimi_config.num_codebooks) + " of " + std::to_string(mimi_config.quantizer.bins) +
                ")");
}

void summarize(FILE *to, const std::string &dir, const ModelSpec &spec) {
  std::fprintf(to, "%s: LM dim %lld x %lld layers (%s), Mimi latent %lld, text vocabulary %lld, voice %s\n",
               dir.c_str(), (long long)spec.lm_config.dim, (long long)spec.lm_config.num_layers,
               spec.dtype == at::kFloat ? "float32" : "bfloat16", (long long)spec.mimi_config.seanet.dimension,
               (long long)spec.lm_config.text_card, spec.voice_name.c_str());
}

int remove_entry(const char *path, const struct stat *, int, struct FTW *) { return std::remove(path); }

// The demo model in `dir`, made unless there; its directory on stdout.
int make_demo(const std::string &dir) {
  if (!exists(dir + "/" + duplex::kLmWeightsName)) {
    ModelSpec spec;
    spec.lm_config_json = tools::kDemoLmConfigJson;
    spec.lm_config = lm::LmConfig::from_json_string(spec.lm_config_json, "the demo LM config");
    spec.lm_config.validate("the demo LM config");
    spec.mimi_config = mimi::MimiConfig::from_json_string(tools::kDemoMimiConfigJson, "the demo Mimi config");
    check_fit(spec.lm_config, spec.mimi_config);
    spec.dtype = at::kFloat;
    spec.seed = tools::kDemoSeed;
    spec.voice_name = tools::kDemoVoiceName;
    const std::string parent = dir.substr(0, dir.rfind('/'));
    if (!parent.empty()) tools::make_directories(parent);
    const std::string part = dir + ".part-" + std::to_string(getpid());
    try {
      write_model(part, spec);
    } catch (...) {
      nftw(part.c_str(), remove_entry, 8, FTW_DEPTH | FTW_PHYS);
      throw;
    }
    // A directory renames onto a missing or empty one only: when another
    // run got there first, its model is the same one.
    if (std::rename(part.c_str(), dir.c_str()) != 0) {
      const int why = errno;
      nftw(part.c_str(), remove_entry, 8, FTW_DEPTH | FTW_PHYS);
      if (!exists(dir + "/" + duplex::kLmWeightsName))
        throw Error(dir + ": cannot put the demo model there (" + std::strerror(why) + ")");
    } else {
      summarize(stderr, dir, spec);
    }
  }
  std::printf("%s\n", dir.c_str());
  return 0;
}

int run(const Options &o) {
  if (o.flag("demo")) return make_demo(o.get("output", tools::demo_model_dir()));
  const std::string dir = o.get("output");
  ModelSpec spec;
  const std::string lm_config_path = o.get("lm-config"), mimi_config_path = o.get("mimi-config");
  spec.lm_config =
      lm_config_path.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(lm_config_path);
  spec.lm_config.validate(lm_config_path.empty() ? "the released LM config" : lm_config_path);
  if (!lm_config_path.empty()) spec.lm_config_json = read_text(lm_config_path);
  spec.mimi_config =
      mimi_config_path.empty() ? mimi::MimiConfig() : mimi::MimiConfig::from_json_file(mimi_config_path);
  check_fit(spec.lm_config, spec.mimi_config);
  const std::string dtype_name = o.get("lm-dtype", "bfloat16");
  spec.dtype = dtype_name == "bfloat16" ? at::kBFloat16
               : dtype_name == "float32" ? at::kFloat
                                         : (o.fail("--lm-dtype is bfloat16 or float32"), at::kFloat);
  spec.seed = uint64_t(o.count("seed", 0));
  spec.voice_steps = o.count("voice-steps", 12);
  if (spec.voice_steps < 1) o.fail("--voice-steps must be at least 1");
  spec.tokenizer = o.get("tokenizer");

  const std::string lm_path = dir + "/" + duplex::kLmWeightsName;
  if (exists(lm_path) && !o.flag("force")) throw Error(lm_path + " exists (--force overwrites)");
  write_model(dir, spec);
  summarize(stdout, dir, spec);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("personaplex-make-model", [&] { return run(parse(argc, argv)); });
}
