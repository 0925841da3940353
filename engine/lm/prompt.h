// The prompts run before a conversation, one LM step per 80 ms frame, as the
// reference does: the voice (agent audio = the voice's codes, text PAD, user
// SINE), silence (agent SILENCE, text PAD, user SINE), one step per token of
// the role text (agent SILENCE, user SINE), silence again.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "lm/conversation.h"
#include "lm/voice.h"

namespace personaplex::lm {

// Mimi codes of silence and of a 440 Hz sine, the reference's fillers.
extern const std::vector<int64_t> kSilenceTokens;
extern const std::vector<int64_t> kSineTokens;

struct VoicePrompt {
  // Either Mimi codes of the voice frames, int64 [8, N] (from audio) ...
  at::Tensor codes;
  // ... or a stored voice (embeddings replayed, then the ring restored).
  VoiceEmbeddings stored;
  bool empty() const { return !codes.defined() && !stored.embeddings.defined(); }
};

struct Prompt {
  VoicePrompt voice;                 // may be empty
  std::vector<int64_t> text_tokens;  // the encoded role text; may be empty
  int64_t silence_steps = 6;         // int(0.5 s * 12.5 Hz)
  // Run the phases through Conversation::prefill (one batched temporal
  // forward, same result) rather than step by step.
  bool prefill = true;
};

using WarningFn = std::function<void(const std::string &)>;

// Most prompt steps allowed: the context minus room for the conversation.
int64_t max_prompt_steps(const LmConfig &config);

// How much of a prompt runs: a prompt over max_prompt_steps keeps its voice
// first and loses text (`warning` then says so). Throws Error for a voice
// that is malformed or cannot fit.
struct PromptPlan {
  int64_t voice_frames = 0, text_tokens = 0;
  std::string warning;
};
PromptPlan plan_prompts(const LmConfig &config, const Prompt &prompt);

// The two phases of run_prompts, for a caller that keeps the voice phase's
// outcome (PromptCache): the voice's frames of `plan`, on a fresh
// conversation; then the role (silence, text, silence) and the pinning.
void run_voice_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan);
void run_role_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan);

// Runs the prompt phases on a fresh conversation, then pins them (when the
// conversation's options say so). A prompt longer than max_prompt_steps is
// truncated (voice first kept, text cut) with a warning. With `save_voice`,
// returns the voice phase as a voice file's contents (codes voices only).
VoiceEmbeddings run_prompts(Conversation &conv, const Prompt &prompt, const WarningFn &warn = {},
                            bool save_voice = false);

}  // namespace personaplex::lm
