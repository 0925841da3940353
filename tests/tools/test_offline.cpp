// personaplex-offline run as a user runs it: the fixture conversation from
// its WAV files must give the reference's agent audio and per-frame text.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <sys/wait.h>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "audio/wav.h"
#include "test_util.h"

using namespace personaplex;

namespace {

std::string tool() { return std::string(std::getenv("PERSONAPLEX_BUILD_ROOT")) + "/engine/tools/personaplex-offline"; }

std::string quote(const std::string &s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct ToolRun {
  int status;
  std::string out_wav, out_json, log;
};

ToolRun run_offline(const std::string &args) {
  const std::string dir = test::temp_dir();
  ToolRun r{0, dir + "/agent.wav", dir + "/text.json", dir + "/log"};
  const std::string cmd = quote(tool()) + " --output-wav " + quote(r.out_wav) + " --output-text " +
                          quote(r.out_json) + " " + args + " > " + quote(r.log) + " 2>&1";
  r.status = std::system(cmd.c_str());
  return r;
}

std::string fixture_args(const std::string &fx, const std::string &prompt) {
  return "--input-wav " + quote(fx + "/lm/user_f32.wav") + " --lm-weights " +
         quote(fx + "/lm/weights.safetensors") + " --lm-config " + quote(fx + "/lm/config.json") +
         " --mimi-weights " + quote(fx + "/mimi/weights.safetensors") + " --mimi-config " +
         quote(fx + "/mimi/config.json") + " --tokenizer " + quote(fx + "/lm/tokenizer.model") +
         " --voice " + quote(fx + "/lm/voice.pt") + " --prompt " + quote(prompt) +
         " --greedy --device cpu";
}

std::string slurp(const std::string &path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(Offline, ReproducesTheReferenceConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string fx = test::fixtures_dir();
  const auto io = nlohmann::json::parse(slurp(fx + "/lm/io.json"));
  ToolRun r = run_offline(fixture_args(fx, io["prompt"].get<std::string>()));
  ASSERT_EQ(r.status, 0) << slurp(r.log);

  SafeTensors ref(fx + "/lm/io.safetensors");
  const at::Tensor out_pcm = ref.load("out_pcm", at::kFloat, at::kCPU).view({-1});
  const at::Tensor user_pcm = ref.load("user_pcm", at::kFloat, at::kCPU).view({-1});
  audio::Wav wav = audio::read_wav(r.out_wav);
  const std::vector<float> agent = wav.channel(0);
  ASSERT_EQ(int64_t(agent.size()), user_pcm.numel());  // the input's length
  const at::Tensor got = at::from_blob(const_cast<float *>(agent.data()), {int64_t(agent.size())}, at::kFloat);
  EXPECT_LT((got - out_pcm.narrow(0, 0, got.numel())).abs().max().item<double>(), 1e-4);

  // One entry per frame: EPAD/PAD or the piece with "▁" as a space.
  const auto text = nlohmann::json::parse(slurp(r.out_json));
  const at::Tensor tokens = ref.load("out_tokens", at::kLong, at::kCPU);
  const auto &pieces = io["text_pieces"];
  ASSERT_EQ(text.size(), pieces.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const int64_t id = tokens[0][0][int64_t(i)].item<int64_t>();
    std::string want = id == 0 ? "EPAD" : id == 3 ? "PAD" : pieces[i].get<std::string>();
    for (size_t p; (p = want.find("\xe2\x96\x81")) != std::string::npos;) want.replace(p, 3, " ");
    EXPECT_EQ(text[i].get<std::string>(), want) << "frame " << i;
  }
}

TEST(Offline, MissingFilesAreOneClearLine) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string fx = test::fixtures_dir();
  ToolRun r = run_offline("--input-wav " + quote(fx + "/lm/user_f32.wav") +
                      " --model-dir /nonexistent-model-dir --device cpu");
  EXPECT_NE(r.status, 0);
  const std::string log = slurp(r.log);
  EXPECT_NE(log.find("/nonexistent-model-dir"), std::string::npos) << log;
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
}

TEST(Offline, UnknownVoiceAndBadWav) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string fx = test::fixtures_dir();
  ToolRun r = run_offline(fixture_args(fx, "hi") + " --voice NOSUCHVOICE");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(slurp(r.log).find("NOSUCHVOICE"), std::string::npos) << slurp(r.log);

  const std::string bad = test::temp_dir() + "/bad.wav";
  std::ofstream(bad) << "RIFF not really a wav";
  std::string args = fixture_args(fx, "hi");
  args.replace(args.find(quote(fx + "/lm/user_f32.wav")), quote(fx + "/lm/user_f32.wav").size(), quote(bad));
  r = run_offline(args);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(slurp(r.log).find("bad.wav"), std::string::npos) << slurp(r.log);
}

TEST(Offline, UsageErrorsExitTwo) {
  ToolRun r = run_offline("--bogus 1");
  EXPECT_EQ(WEXITSTATUS(r.status), 2);
  EXPECT_NE(slurp(r.log).find("unknown option --bogus"), std::string::npos);
}

TEST(Offline, HelpPrintsTheUsageAndExitsZero) {
  ToolRun r = run_offline("--help");
  EXPECT_EQ(WEXITSTATUS(r.status), 0);
  const std::string log = slurp(r.log);
  EXPECT_NE(log.find("usage: personaplex-offline"), std::string::npos) << log;
  EXPECT_NE(log.find("--temperature"), std::string::npos) << log;
  EXPECT_NE(log.find("--temp-audio"), std::string::npos) << log;
}

// The element's property names and the reference's flags give the same run.
TEST(Offline, ElementAndReferenceOptionNamesAgree) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string fx = test::fixtures_dir();
  std::string base = fixture_args(fx, "hi");
  base.replace(base.find(" --greedy"), 9, "");  // sampled: the values matter
  ToolRun ours = run_offline(base + " --seed 7 --temperature 0.6 --temperature-text 0.5 --top-k 20 --top-k-text 5");
  ToolRun ref = run_offline(base + " --seed 7 --temp-audio 0.6 --temp-text 0.5 --topk-audio 20 --topk-text 5");
  ToolRun other = run_offline(base + " --seed 7 --temp-audio 0.9 --temp-text 0.5 --topk-audio 200 --topk-text 5");
  ASSERT_EQ(ours.status, 0) << slurp(ours.log);
  ASSERT_EQ(ref.status, 0) << slurp(ref.log);
  ASSERT_EQ(other.status, 0) << slurp(other.log);
  EXPECT_EQ(audio::read_wav(ours.out_wav).channel(0), audio::read_wav(ref.out_wav).channel(0));
  EXPECT_NE(audio::read_wav(ours.out_wav).channel(0), audio::read_wav(other.out_wav).channel(0));
}
