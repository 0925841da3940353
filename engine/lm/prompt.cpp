#include "lm/prompt.h"

#include <algorithm>

#include "core/error.h"
#include "core/yield_point.h"

namespace personaplex::lm {

const std::vector<int64_t> kSilenceTokens = {948, 243, 1178, 546, 1736, 1030, 1978, 2008};
const std::vector<int64_t> kSineTokens = {430, 1268, 381, 1611, 1095, 1495, 56, 472};

namespace {

constexpr int64_t kTextPad = 3;

ForcedStep filler_step(int64_t text, const std::vector<int64_t> &agent) {
  ForcedStep s;
  s.tokens.text = text;
  s.tokens.agent = agent;
  s.tokens.user = kSineTokens;
  return s;
}

void run_steps(Conversation &conv, const std::vector<ForcedStep> &steps, bool prefill) {
  if (prefill) return conv.prefill(steps);
  for (const auto &s : steps) {
    yield_point();  // between steps, as prefill does between layers
    if (s.embedding.defined()) conv.step_embedding(s.embedding);
    else conv.step(s.tokens);
  }
}

void run_voice(Conversation &conv, const VoicePrompt &voice, int64_t frames, bool prefill) {
  std::vector<ForcedStep> steps(size_t(std::max<int64_t>(frames, 0)));
  if (voice.codes.defined()) {
    at::Tensor codes = voice.codes.to(at::kCPU, at::kLong).contiguous();
    for (int64_t f = 0; f < frames; ++f) {
      at::Tensor col = codes.select(1, f).contiguous();
      steps[size_t(f)] = filler_step(kTextPad, {col.data_ptr<int64_t>(), col.data_ptr<int64_t>() + col.numel()});
    }
    run_steps(conv, steps, prefill);
  } else if (voice.stored.embeddings.defined()) {
    for (int64_t f = 0; f < frames; ++f) steps[size_t(f)].embedding = voice.stored.embeddings[f];
    run_steps(conv, steps, prefill);
    conv.ring().load(voice.stored.cache);
  }
}

}  // namespace

int64_t max_prompt_steps(const LmConfig &config) {
  return config.context - std::min<int64_t>(config.context / 4, 750);
}

PromptPlan plan_prompts(const LmConfig &c, const Prompt &prompt) {
  if (prompt.voice.codes.defined() &&
      (prompt.voice.codes.dim() != 2 || prompt.voice.codes.size(0) != kAudioCodebooks))
    throw Error("voice codes must be [" + std::to_string(kAudioCodebooks) + ", frames]");
  // Model steps each phase takes: a codes voice of N frames runs N - 1 (the
  // first step only primes the ring), a stored voice one per embedding.
  PromptPlan plan;
  plan.voice_frames = prompt.voice.codes.defined() ? prompt.voice.codes.size(1)
                      : prompt.voice.empty()       ? 0
                                                   : prompt.voice.stored.embeddings.size(0);
  auto voice_steps = [&](int64_t frames) {
    return prompt.voice.codes.defined() ? std::max<int64_t>(frames - 1, 0) : frames;
  };
  plan.text_tokens = int64_t(prompt.text_tokens.size());
  const int64_t budget = max_prompt_steps(c), fixed = 2 * prompt.silence_steps + 1;
  const int64_t total = voice_steps(plan.voice_frames) + plan.text_tokens + fixed;
  if (total <= budget) return plan;
  plan.text_tokens = std::max<int64_t>(0, std::min(plan.text_tokens, budget - fixed - voice_steps(plan.voice_frames)));
  if (!prompt.voice.codes.defined() && plan.voice_frames > 0 && voice_steps(plan.voice_frames) + fixed > budget)
    throw Error("the stored voice (" + std::to_string(plan.voice_frames) + " frames) does not fit the model's context");
  while (plan.voice_frames > 0 && voice_steps(plan.voice_frames) + plan.text_tokens + fixed > budget)
    --plan.voice_frames;
  plan.warning = "prompt of " + std::to_string(total) + " steps exceeds " + std::to_string(budget) + " (context " +
                 std::to_string(c.context) + "): truncated to " + std::to_string(plan.voice_frames) +
                 " voice frames and " + std::to_string(plan.text_tokens) + " text tokens";
  return plan;
}

void run_voice_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan) {
  run_voice(conv, prompt.voice, plan.voice_frames, prompt.prefill);
}

void run_role_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan) {
  std::vector<ForcedStep> steps;
  for (int64_t i = 0; i < prompt.silence_steps; ++i) steps.push_back(filler_step(kTextPad, kSilenceTokens));
  for (int64_t i = 0; i < plan.text_tokens; ++i)
    steps.push_back(filler_step(prompt.text_tokens[size_t(i)], kSilenceTokens));
  for (int64_t i = 0; i < prompt.silence_steps; ++i) steps.push_back(filler_step(kTextPad, kSilenceTokens));
  run_steps(conv, steps, prompt.prefill);
  conv.pin_prompt();
}

VoiceEmbeddings run_prompts(Conversation &conv, const Prompt &prompt, const WarningFn &warn, bool save_voice) {
  const LmConfig &c = conv.model().config();
  const PromptPlan plan = plan_prompts(c, prompt);
  if (warn && !plan.warning.empty()) warn(plan.warning);
  VoiceEmbeddings saved;
  const bool save = save_voice && prompt.voice.codes.defined();
  conv.record_embeddings(save);
  run_voice_phase(conv, prompt, plan);
  conv.record_embeddings(false);
  if (save) {
    auto embeddings = conv.take_embeddings();
    if (embeddings.empty()) throw Error("a voice of one frame cannot be saved");
    saved.embeddings = at::stack(embeddings).view({-1, 1, 1, c.dim});
    saved.cache = conv.ring().to_tensor();
  }
  run_role_phase(conv, prompt, plan);
  return saved;
}

}  // namespace personaplex::lm
