#include "lm/conversation.h"

#include "core/error.h"
#include "lm/depformer.h"

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

std::vector<int64_t> StepResult::agent() const {
  return {tokens.begin() + 1, tokens.begin() + 1 + kAudioCodebooks};
}

at::Tensor StepResult::agent_codes() const {
  return at::tensor(agent(), at::kLong).view({1, kAudioCodebooks, 1});
}

Conversation::Conversation(std::shared_ptr<const LmModel> model, ConversationOptions options)
    : model_(std::move(model)),
      options_(options),
      ring_(model_->config()),
      temporal_(new_temporal_state(model_->weights())),
      generator_(make_generator(model_->device(), options.seed)) {}

void Conversation::reset(std::optional<uint64_t> seed) {
  ring_.reset();
  temporal_.reset();
  generator_ = make_generator(model_->device(), seed.value_or(options_.seed));
  embeddings_.clear();
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
  if (user_codes.empty()) throw Error("user audio: no codes given");
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

std::optional<StepResult> Conversation::step_embedding(const at::Tensor &embedding) {
  const auto &c = model_->config();
  if (embedding.numel() != c.dim)
    throw Error("voice embedding of " + std::to_string(embedding.numel()) + " values, the model's dim is " +
                std::to_string(c.dim));
  // The reference feeds initial tokens as given audio and PAD as text, twice
  // at the very start (the first call only primes the ring).
  StepTokens dummy;
  dummy.text = kTextPad;
  dummy.agent.assign(kAudioCodebooks, c.card);
  dummy.user.assign(size_t(c.user_codebooks()), c.card);
  auto cols = ring_.prepare(dummy);
  if (!cols) cols = ring_.prepare(dummy);
  at::Tensor x = embedding.to(model_->device(), model_->dtype()).reshape({1, 1, c.dim});
  return run(*cols, x);
}

int64_t Conversation::depformer_steps(int64_t target) const {
  const int64_t dep_q = model_->config().dep_q;
  if (options_.full_depformer) return dep_q;
  for (int64_t k = dep_q; k > 0; --k)
    if (!ring_.given(k, target)) return k;  // row k is depformer step k-1
  return 0;
}

std::optional<StepResult> Conversation::run(const TokenRing::Columns &cols,
                                            const at::Tensor &embedding) {
  const LmModel &m = *model_;
  const auto &c = m.config();
  const int64_t t = cols.target, step_index = ring_.offset();
  if (record_) embeddings_.push_back(embedding.detach().to(at::kCPU).clone());
  at::Tensor h = m.out_norm(temporal_step(m.weights(), embedding, temporal_));

  const bool text_given = ring_.given(0, t);
  const int64_t dsteps = depformer_steps(t);
  at::Tensor text_tok;  // sampled text, on the device
  if (!text_given || options_.keep_logits) {
    at::Tensor logits = m.text_logits(h);
    if (options_.keep_logits) text_logits_ = logits[0].to(at::kCPU);
    if (!text_given)
      text_tok = sample_token(logits, options_.sampling.greedy, options_.sampling.temp_text,
                              options_.sampling.top_k_text, generator_);
  }
  std::vector<int64_t> audio;
  std::optional<int64_t> text;
  at::Tensor dep_tokens;
  if (dsteps > 0) {
    std::vector<int64_t> forced(size_t(c.dep_q)), mask(size_t(c.dep_q));
    for (int64_t k = 0; k < c.dep_q; ++k) {
      forced[size_t(k)] = ring_.get(k + 1, t);
      mask[size_t(k)] = ring_.given(k + 1, t);
    }
    auto dev = at::TensorOptions().device(m.device());
    at::Tensor forced_t = at::tensor(forced, at::kLong).view({1, -1}).to(dev);
    at::Tensor mask_t = at::tensor(mask, at::kLong).view({1, -1}).to(dev) != 0;
    at::Tensor next_text = text_given ? at::full({1}, ring_.get(0, t), dev.dtype(at::kLong)) : text_tok;
    auto r = depformer_run(m.weights(), h, next_text, forced_t, mask_t, dsteps, options_.sampling,
                           generator_, options_.keep_logits);
    dep_tokens = r.tokens;
    if (options_.keep_logits) audio_logits_ = r.logits[0].to(at::kCPU);
  }
  // One transfer for everything sampled this step.
  std::vector<at::Tensor> parts;
  if (text_tok.defined()) parts.push_back(text_tok.view({-1}));
  if (dep_tokens.defined()) parts.push_back(dep_tokens.view({-1}));
  if (!parts.empty()) {
    at::Tensor host = at::cat(parts).to(at::kCPU);
    const int64_t *p = host.data_ptr<int64_t>();
    if (text_tok.defined()) text = *p++;
    audio.assign(p, p + (dep_tokens.defined() ? dep_tokens.numel() : 0));
  }
  auto out = ring_.finish(cols, text, audio);
  if (!out) return std::nullopt;
  return StepResult{step_index, std::move(*out)};
}

void Conversation::pin_prompt() {
  if (options_.pin_prompt) temporal_.pin(temporal_.offset);
}

}  // namespace personaplex::lm
