// One conversation with a shared LmModel: its temporal KV caches, token
// ring, step counter and random generator. Steps follow the reference
// generator (see token_ring.h): a step takes the tokens it is given (user
// audio always; text and agent audio during prompts), predicts the rest and,
// once the delays are filled, returns one output column.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "lm/model.h"
#include "lm/sampling.h"
#include "lm/step.h"
#include "core/graph_cache.h"
#include "lm/temporal.h"
#include "lm/token_ring.h"

namespace personaplex::serving {
class BatchServer;
}

namespace personaplex::lm {

struct ConversationOptions {
  uint64_t seed = 0;
  SamplingParams sampling;
  // Keep the prompt's KV entries once the context is exceeded (the reference
  // forgets them after `context` steps). Exact until then.
  bool pin_prompt = true;
  // Keep each step's logits (last_text_logits / last_audio_logits).
  bool keep_logits = false;
  // Run every depformer step, also those predicting given (user) tokens;
  // agent outputs never depend on them, so this only serves comparisons.
  bool full_depformer = false;
  // On CUDA, replay each kind of step as a CUDA graph (far less host work);
  // for a BatchServer, its batched steps. PERSONAPLEX_CUDA_GRAPHS=0 turns the
  // batch server's graphs off too.
  bool cuda_graphs = true;
};

struct StepResult {
  int64_t step = 0;             // index of the step that produced this (from 0)
  std::vector<int64_t> tokens;  // rows 0..dep_q: text, agent cb0..7, then user
  int64_t text() const { return tokens[0]; }
  std::vector<int64_t> agent() const;  // the agent's kAudioCodebooks codes
  at::Tensor agent_codes() const;      // int64 [1, kAudioCodebooks, 1], CPU (Mimi's input)
};

// Throws Error unless `codes` are one step of the user's audio: the
// config's user_codebooks() codes, each in [0, card).
void check_user_codes(const LmConfig &config, const std::vector<int64_t> &codes);

// A forced step: tokens, or a stored input embedding (see step_embedding).
struct ForcedStep {
  StepTokens tokens;
  at::Tensor embedding;  // when defined, replayed instead of the tokens
};

// Where a conversation's prompts left it: its ring, its temporal KV entries
// and position, and how many noise draws its generator made. The same for
// any seed when no prompt step was sampled, so another conversation on the
// same model and options can start there (Conversation::start_from) instead
// of running the prompts again.
struct PromptState {
  TokenRing ring;
  PinnedKVCache::Prefix kv;
  int64_t offset = 0;
  int64_t draws = 0;
};

class Conversation {
 public:
  explicit Conversation(std::shared_ptr<const LmModel> model, ConversationOptions options = {});

  const LmModel &model() const { return *model_; }
  const ConversationOptions &options() const { return options_; }

  // A live step: the user's n_q - 8 codes (each in [0, card)); text and agent
  // audio are generated. Throws Error on a wrong count or an out-of-range code.
  std::optional<StepResult> step_user(const std::vector<int64_t> &user_codes);
  // Any mix of given tokens (prompts). Same validation.
  std::optional<StepResult> step(const StepTokens &in);
  // Replays a stored input embedding ([dim] values in any shape) in place of
  // the embedding of the ring's column, as the reference's voice replay does.
  std::optional<StepResult> step_embedding(const at::Tensor &embedding);

  // The same as step() / step_embedding() on each, in order (their outputs
  // dropped), but steps whose predictions are all overridden by given tokens
  // run the temporal transformer as one causal chunk and skip the depformer
  // and sampling (the generator still draws what those steps would have
  // drawn). Others, and steps past the cache's room, run one by one.
  void prefill(const std::vector<ForcedStep> &steps);

  // Pins every KV entry written so far (the prompt) when options.pin_prompt;
  // a no-op otherwise.
  void pin_prompt();
  // Where the steps so far left this conversation, as a PromptState;
  // nullopt when that depends on the seed (a step sampled a token) or holds
  // more than the state (kept logits, recorded embeddings).
  std::optional<PromptState> prompt_state() const;
  // An empty conversation to where `state` leaves one (its generator drawn as
  // far as the prompts drew it): the same as running those prompts here.
  // Throws Error unless the conversation is empty.
  void start_from(const PromptState &state);

  // Back to an empty conversation; reseeds the generator with `seed` (or the
  // options' seed).
  void reset(std::optional<uint64_t> seed = std::nullopt);

  // Whether steps replay CUDA graphs (false on CPU or after a failed capture).
  bool cuda_graphs_active() const { return graphs_.enabled(); }

  int64_t steps() const { return ring_.offset(); }          // steps taken
  int64_t model_steps() const { return temporal_.offset; }  // temporal transformer steps
  // Causal chunks prefill() ran since the reset (each one pass over the
  // weights), and the steps they held.
  int64_t prefill_chunks() const { return prefill_chunks_; }
  int64_t prefilled_steps() const { return prefilled_steps_; }
  TokenRing &ring() { return ring_; }
  const TemporalState &temporal_state() const { return temporal_; }

  // With options.keep_logits: the last step's fp32 logits (CPU), [text_out]
  // and [depformer steps run, card].
  const at::Tensor &last_text_logits() const { return text_logits_; }
  const at::Tensor &last_audio_logits() const { return audio_logits_; }

  // Records each step's input embedding (for saving a voice prompt).
  void record_embeddings(bool on) { record_ = on; }
  std::vector<at::Tensor> take_embeddings() { return std::move(embeddings_); }

 private:
  // Over a given temporal state (the batch server's: a view of its KV row).
  Conversation(std::shared_ptr<const LmModel> model, ConversationOptions options, TemporalState temporal);
  void validate(const StepTokens &in) const;
  std::optional<TokenRing::Columns> prepare_embedding();
  bool predictions_given(int64_t target) const;
  // A prefill chunk's step input: the ring's column to embed, or a stored
  // embedding as given.
  struct ChunkInput {
    std::vector<int64_t> column;
    at::Tensor embedding;
  };
  at::Tensor chunk_embeddings(const std::vector<ChunkInput> &inputs) const;  // [1, T, dim]
  void run_chunk(std::vector<ChunkInput> &inputs);
  std::optional<StepResult> run(const TokenRing::Columns &cols, const at::Tensor &embedding);
  // run() in two halves around the model step (the batch server runs the
  // model step for several conversations at once): inputs and noise written
  // to io_, depformer steps returned; then the ring and counters advanced
  // from the host copy of io_.tokens.
  int64_t begin_step(const TokenRing::Columns &cols, const at::Tensor &embedding);
  std::optional<StepResult> end_step(const TokenRing::Columns &cols, const int64_t *tokens, int64_t dsteps);
  friend class serving::BatchServer;
  int64_t depformer_steps(int64_t target) const;
  void write_inputs(const TokenRing::Columns &cols, const at::Tensor &embedding);
  // The step's StepInts (positions and slot from the cache, given tokens
  // from the ring), and its noise drawn from the generator into `noise` (a
  // tensor of io_.noise's shape; nothing drawn when greedy).
  std::vector<int64_t> step_ints(const TokenRing::Columns &cols) const;
  void draw_noise(const at::Tensor &noise);

  std::shared_ptr<const LmModel> model_;
  ConversationOptions options_;
  TokenRing ring_;
  TemporalState temporal_;
  StepBuffers io_;
  GraphCache graphs_;  // the step as CUDA graphs, one per variant
  at::Generator generator_;
  at::Tensor text_logits_, audio_logits_;
  bool record_ = false;
  std::vector<at::Tensor> embeddings_;
  int64_t draws_ = 0;          // draw_noise calls that drew, since the reset
  int64_t prefill_chunks_ = 0, prefilled_steps_ = 0;
  // The next step's noise is already in the batch's row (drawn right after
  // the last batched step was queued, while the GPU ran it): the same draw
  // the step would make, made earlier.
  bool noise_drawn_ahead_ = false;
  int64_t sampled_steps_ = 0;  // model steps run one by one, since the reset
};

}  // namespace personaplex::lm
