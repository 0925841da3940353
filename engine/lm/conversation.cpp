#include "lm/conversation.h"

#include "core/error.h"
#include "core/yield_point.h"
#include "lm/ops.h"
#include "lm/prefill_rendezvous.h"

namespace personaplex::lm {
namespace {

// The reference's text id for "nothing said" in prompts and voice replay.
constexpr int64_t kTextPad = 3;

void check_codes(const std::vector<int64_t> &codes, size_t count, int64_t card, const char *what) {
  if (codes.empty()) return;
  if (codes.size() != count)
    throw Error(std::string(what) + ": " + std::to_string(codes.size()) + " codes given, " +
                std::to_string(count) + " expected");
  for (size_t i = 0; i < codes.size(); ++i)
    if (codes[i] < 0 || codes[i] >= card)
      throw Error(std::string(what) + ": code " + std::to_string(codes[i]) + " of codebook " +
                  std::to_string(i) + " is outside [0, " + std::to_string(card) + ")");
}

}  // namespace

void check_user_codes(const LmConfig &config, const std::vector<int64_t> &codes) {
  if (codes.empty()) throw Error("user audio: no codes given");
  check_codes(codes, size_t(config.user_codebooks()), config.card, "user audio");
}

std::vector<int64_t> StepResult::agent() const {
  return {tokens.begin() + 1, tokens.begin() + 1 + kAudioCodebooks};
}

at::Tensor StepResult::agent_codes() const {
  return at::tensor(agent(), at::kLong).view({1, kAudioCodebooks, 1});
}

Conversation::Conversation(std::shared_ptr<const LmModel> model, ConversationOptions options)
    : Conversation(model, options, new_temporal_state(model->weights(), model->kv_format())) {}

Conversation::Conversation(std::shared_ptr<const LmModel> model, ConversationOptions options, TemporalState temporal)
    : model_(std::move(model)),
      options_(options),
      ring_(model_->config()),
      temporal_(std::move(temporal)),
      io_(make_step_buffers(model_->weights(), options.sampling)),
      graphs_(model_->device(), options.cuda_graphs),
      generator_(make_generator(model_->device(), options.seed)) {}

void Conversation::reset(std::optional<uint64_t> seed) {
  ring_.reset();
  temporal_.reset();
  generator_ = make_generator(model_->device(), seed.value_or(options_.seed));
  embeddings_.clear();
  draws_ = 0;
  prefill_chunks_ = prefilled_steps_ = 0;
  noise_drawn_ahead_ = false;
  sampled_steps_ = 0;
}

std::optional<PromptState> Conversation::prompt_state() const {
  if (sampled_steps_ > 0 || options_.keep_logits || record_ || noise_drawn_ahead_ ||
      temporal_.kv.end() != temporal_.offset)
    return std::nullopt;
  return PromptState{ring_, temporal_.kv.prefix(temporal_.kv.end()), temporal_.offset, draws_};
}

void Conversation::start_from(const PromptState &state) {
  if (ring_.offset() != 0 || temporal_.offset != 0) throw Error("a conversation starts from prompts only when empty");
  temporal_.kv.restore(state.kv);
  temporal_.offset = state.offset;
  ring_.assign(state.ring);
  // The same draws in the same order leave the generator where they did.
  for (int64_t i = 0; i < state.draws; ++i) draw_noise(io_.noise);
}

void Conversation::validate(const StepTokens &in) const {
  const auto &c = model_->config();
  if (in.text && (*in.text < 0 || *in.text >= c.text_card))
    throw Error("text token " + std::to_string(*in.text) + " is outside [0, " +
                std::to_string(c.text_card) + ")");
  check_codes(in.agent, kAudioCodebooks, c.card, "agent audio");
  check_codes(in.user, size_t(c.user_codebooks()), c.card, "user audio");
}

std::optional<StepResult> Conversation::step_user(const std::vector<int64_t> &user_codes) {
  check_user_codes(model_->config(), user_codes);
  StepTokens in;
  in.user = user_codes;
  return step(in);
}

std::optional<StepResult> Conversation::step(const StepTokens &in) {
  validate(in);
  auto cols = ring_.prepare(in);
  if (!cols) return std::nullopt;
  return run(*cols, model_->embed_column(ring_.column(cols->input)));
}

static void check_embedding(const at::Tensor &embedding, int64_t dim) {
  if (embedding.numel() != dim)
    throw Error("voice embedding of " + std::to_string(embedding.numel()) + " values, the model's dim is " +
                std::to_string(dim));
}

std::optional<TokenRing::Columns> Conversation::prepare_embedding() {
  const auto &c = model_->config();
  // The reference feeds initial tokens as given audio and PAD as text, twice
  // at the very start (the first call only primes the ring).
  StepTokens dummy;
  dummy.text = kTextPad;
  dummy.agent.assign(kAudioCodebooks, c.card);
  dummy.user.assign(size_t(c.user_codebooks()), c.card);
  auto cols = ring_.prepare(dummy);
  if (!cols) cols = ring_.prepare(dummy);
  return cols;
}

std::optional<StepResult> Conversation::step_embedding(const at::Tensor &embedding) {
  const auto &c = model_->config();
  check_embedding(embedding, c.dim);
  auto cols = prepare_embedding();
  at::Tensor x = embedding.to(model_->device(), model_->dtype()).reshape({1, 1, c.dim});
  return run(*cols, x);
}

bool Conversation::predictions_given(int64_t target) const {
  for (int64_t row = 0; row <= model_->config().dep_q; ++row)
    if (!ring_.given(row, target)) return false;
  return true;
}

// A chunk's inputs embedded at once: one upload of its columns (or of its
// stored embeddings) and one embedding pass, not one of each a step (on a
// GPU an upload from the host waits for the device every time).
at::Tensor Conversation::chunk_embeddings(const std::vector<ChunkInput> &inputs) const {
  const int64_t dim = model_->config().dim;
  std::vector<at::Tensor> parts;  // [T_i, dim] each, runs of one kind of input
  for (size_t i = 0; i < inputs.size();) {
    const bool stored = inputs[i].embedding.defined();
    size_t j = i;
    while (j < inputs.size() && inputs[j].embedding.defined() == stored) ++j;
    if (stored) {
      std::vector<at::Tensor> rows;
      for (size_t k = i; k < j; ++k) rows.push_back(inputs[k].embedding.reshape({dim}));
      parts.push_back(at::stack(rows).to(model_->device(), model_->dtype()));
    } else {
      const int64_t streams = int64_t(inputs[i].column.size());
      std::vector<int64_t> ids;
      ids.reserve(size_t(streams) * (j - i));
      for (size_t k = i; k < j; ++k) ids.insert(ids.end(), inputs[k].column.begin(), inputs[k].column.end());
      at::Tensor host = at::tensor(ids, at::kLong).view({int64_t(j - i), streams});
      parts.push_back(model_->embed_columns(host.to(model_->device())).view({int64_t(j - i), dim}));
    }
    i = j;
  }
  return at::cat(parts, 0).view({1, -1, dim});
}

void Conversation::run_chunk(std::vector<ChunkInput> &inputs) {
  if (inputs.empty()) return;
  const at::Tensor x = chunk_embeddings(inputs);
  if (record_) {
    const at::Tensor host = x.detach().to(at::kCPU);
    for (int64_t t = 0; t < host.size(1); ++t) embeddings_.push_back(host.narrow(1, t, 1).clone());
  }
  // Kept logits read this chunk's output: those chunks run alone.
  at::Tensor h;
  if (temporal_.rendezvous && !options_.keep_logits) temporal_.rendezvous->run(model_->weights(), x, temporal_);
  else h = temporal_prefill(model_->weights(), x, temporal_);
  ++prefill_chunks_;
  prefilled_steps_ += int64_t(inputs.size());
  if (options_.keep_logits) {
    text_logits_ = model_->text_logits(model_->out_norm(h.narrow(1, h.size(1) - 1, 1)))[0].to(at::kCPU);
    audio_logits_ = at::empty({0, model_->config().card}, at::kFloat);
  }
  inputs.clear();
}

void Conversation::prefill(const std::vector<ForcedStep> &steps) {
  const auto &c = model_->config();
  for (const auto &s : steps) {
    if (s.embedding.defined()) check_embedding(s.embedding, c.dim);
    else validate(s.tokens);
  }
  // Inputs of the steps not run yet: their ring updates are done, their
  // temporal step is pending in a chunk.
  std::vector<ChunkInput> chunk;
  for (const auto &s : steps) {
    auto cols = s.embedding.defined() ? prepare_embedding() : ring_.prepare(s.tokens);
    if (!cols) continue;
    ChunkInput in;
    if (s.embedding.defined()) in.embedding = s.embedding;
    else in.column = ring_.column(cols->input);
    if (!predictions_given(cols->target) || !prefill_fits(temporal_, int64_t(chunk.size()) + 1)) {
      run_chunk(chunk);
      yield_point();
      run(*cols, chunk_embeddings({in}));
      continue;
    }
    // Keep the generator where stepping would leave it.
    draw_noise(io_.noise);
    // Every prediction is overridden: nothing sampled is written.
    ring_.finish(*cols, std::nullopt, {});
    chunk.push_back(std::move(in));
  }
  run_chunk(chunk);
}

int64_t Conversation::depformer_steps(int64_t target) const {
  const int64_t dep_q = model_->config().dep_q;
  if (options_.full_depformer) return dep_q;
  for (int64_t k = dep_q; k > 0; --k)
    if (!ring_.given(k, target)) return k;  // row k is depformer step k-1
  return 0;
}

std::vector<int64_t> Conversation::step_ints(const TokenRing::Columns &cols) const {
  const int64_t dep_q = model_->config().dep_q, t = cols.target;
  const PinnedKVCache &kv = temporal_.kv;
  std::vector<int64_t> ints(size_t(StepInts::size(dep_q)));
  ints[StepInts::kPosition] = temporal_.offset;
  ints[StepInts::kSlot] = kv.next_slot();
  ints[StepInts::kPinnedPosition] = kv.capacity() - 1;
  ints[StepInts::kText] = ring_.get(0, t);
  ints[StepInts::kTextGiven] = ring_.given(0, t);
  for (int64_t k = 0; k < dep_q; ++k) {
    ints[size_t(StepInts::kForced + k)] = ring_.get(k + 1, t);
    ints[size_t(StepInts::kForced + dep_q + k)] = ring_.given(k + 1, t);
  }
  return ints;
}

void Conversation::draw_noise(const at::Tensor &noise) {
  if (options_.sampling.greedy) return;
  noise.exponential_(1.0, generator_);
  ++draws_;
}

void Conversation::write_inputs(const TokenRing::Columns &cols, const at::Tensor &embedding) {
  io_.ints.copy_(at::tensor(step_ints(cols), at::kLong));
  io_.x.copy_(embedding.view({1, 1, -1}));
  draw_noise(io_.noise);
}

int64_t Conversation::begin_step(const TokenRing::Columns &cols, const at::Tensor &embedding) {
  if (record_) embeddings_.push_back(embedding.detach().to(at::kCPU).clone());
  write_inputs(cols, embedding);
  return depformer_steps(cols.target);
}

std::optional<StepResult> Conversation::end_step(const TokenRing::Columns &cols, const int64_t *tokens,
                                                 int64_t dsteps) {
  const int64_t t = cols.target, step_index = ring_.offset();
  temporal_.kv.advance();
  ++temporal_.offset;
  std::optional<int64_t> text;
  if (!ring_.given(0, t)) text = tokens[0];
  auto out = ring_.finish(cols, text, std::vector<int64_t>(tokens + 1, tokens + 1 + dsteps));
  if (!out) return std::nullopt;
  return StepResult{step_index, std::move(*out)};
}

std::optional<StepResult> Conversation::run(const TokenRing::Columns &cols,
                                            const at::Tensor &embedding) {
  const LmWeights &w = model_->weights();
  ++sampled_steps_;
  const int64_t dsteps = begin_step(cols, embedding);
  const bool split = temporal_.kv.split();
  graphs_.run({dsteps * 2 + (split ? 1 : 0)},
              [&] { model_step(w, options_.sampling, temporal_, io_, dsteps, split); });

  // One transfer for everything sampled this step.
  at::Tensor host = io_.tokens.to(at::kCPU);
  if (options_.keep_logits) {
    text_logits_ = io_.text_logits[0].to(at::kCPU);
    audio_logits_ = io_.audio_logits[0].narrow(0, 0, dsteps).to(at::kCPU);
  }
  return end_step(cols, host.data_ptr<int64_t>(), dsteps);
}

void Conversation::pin_prompt() {
  if (!options_.pin_prompt) return;
  temporal_.pin(temporal_.offset);
}

}  // namespace personaplex::lm
