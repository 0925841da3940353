// voice-check MADE.pt FIXTURES: checks a voice file that personaplex-voice
// made from the fixtures' voice_f32.wav with the fixture model. It must load
// as a voice of that model, equal what the engine computes in this process
// for the same wav (bit for bit), and match the reference's voice.pt (made
// from the same audio: embeddings within 1e-4, the token ring exactly).
#include <ATen/ATen.h>

#include <cstdio>
#include <string>

#include "io/safetensors.h"
#include "lm/conversation.h"
#include "lm/model.h"
#include "lm/prompt.h"
#include "lm/voice.h"
#include "duplex/voice_audio.h"
#include "mimi/mimi.h"

using namespace personaplex;

namespace {

int failures = 0;

void expect(bool ok, const std::string &what) {
  std::printf("%s: %s\n", ok ? "ok" : "FAIL", what.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: voice-check MADE.pt FIXTURES\n");
    return 2;
  }
  const std::string made = argv[1], lm_dir = std::string(argv[2]) + "/lm", mimi_dir = std::string(argv[2]) + "/mimi";
  try {
    auto mimi = mimi::Mimi::load(mimi_dir + "/weights.safetensors", mimi_dir + "/config.json", at::kCPU, at::kFloat);
    auto model = lm::LmModel::load(lm_dir + "/weights.safetensors", lm_dir + "/config.json", at::kCPU, at::kFloat);
    const lm::VoiceEmbeddings got = lm::load_voice_file(made, model->config());

    lm::Prompt prompt;
    prompt.voice.codes =
        duplex::encode_voice(*mimi, duplex::load_voice_audio(lm_dir + "/voice_f32.wav", mimi->sample_rate()));
    lm::Conversation conv(model);
    const lm::VoiceEmbeddings want = lm::run_prompts(conv, prompt, {}, true);
    expect(got.embeddings.sizes() == want.embeddings.sizes(), "embeddings shape " + shape_string(got.embeddings.sizes()));
    expect(got.embeddings.scalar_type() == at::kFloat, "embeddings are float32 (the CPU's dtype)");
    expect(at::equal(got.embeddings, want.embeddings), "embeddings equal the engine's");
    expect(at::equal(got.cache, want.cache), "token ring equals the engine's");

    const lm::VoiceEmbeddings ref = lm::load_voice_file(lm_dir + "/voice.pt", model->config());
    expect(got.embeddings.sizes() == ref.embeddings.sizes(), "same shape as the reference's voice.pt");
    if (got.embeddings.sizes() == ref.embeddings.sizes()) {
      const double diff = (got.embeddings - ref.embeddings.to(at::kFloat)).abs().max().item<double>();
      expect(diff < 1e-4, "embeddings within 1e-4 of the reference's (max diff " + std::to_string(diff) + ")");
    }
    expect(at::equal(got.cache, ref.cache), "token ring equals the reference's");
  } catch (const std::exception &e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  return failures ? 1 : 0;
}
