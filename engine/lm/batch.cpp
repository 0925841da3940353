#include "lm/batch.h"

#include <algorithm>

#include "core/error.h"
#include "lm/depformer.h"
#include "lm/ops.h"
#include "lm/stage_timer.h"

namespace personaplex::lm {

BatchServer::BatchServer(std::shared_ptr<const LmModel> model, int64_t max_slots, ConversationOptions options)
    : model_(std::move(model)), options_(options) {
  if (max_slots <= 0) throw Error("batch server: max_slots must be positive");
  slots_.resize(size_t(max_slots));
  used_.assign(size_t(max_slots), false);
  for (int64_t s = max_slots - 1; s >= 0; --s) free_.push_back(s);
}

bool BatchServer::in_use(int64_t slot) const {
  return slot >= 0 && slot < max_slots() && used_[size_t(slot)];
}

Conversation &BatchServer::conversation(int64_t slot) {
  if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
  return *slots_[size_t(slot)];
}

int64_t BatchServer::join(const Prompt &prompt, uint64_t seed, const WarningFn &warn) {
  if (free_.empty()) throw Error("batch server: all " + std::to_string(max_slots()) + " slots are in use");
  const int64_t slot = free_.back();
  auto &conv = slots_[size_t(slot)];
  if (!conv) {
    ConversationOptions o = options_;
    o.seed = seed;
    o.cuda_graphs = false;
    conv = std::make_unique<Conversation>(model_, o);
  } else {
    conv->reset(seed);
  }
  run_prompts(*conv, prompt, warn);
  free_.pop_back();
  used_[size_t(slot)] = true;
  return slot;
}

void BatchServer::leave(int64_t slot) {
  if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
  used_[size_t(slot)] = false;
  free_.push_back(slot);
}

std::map<int64_t, std::optional<StepResult>> BatchServer::step(
    const std::map<int64_t, std::vector<int64_t>> &user) {
  std::map<int64_t, std::optional<StepResult>> results;
  for (const auto &[slot, codes] : user) {
    if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
    if (codes.empty()) throw Error("user audio: no codes given");
    StepTokens in;
    in.user = codes;
    slots_[size_t(slot)]->validate(in);
  }

  struct Row {
    int64_t slot;
    Conversation *conv;
    TokenRing::Columns cols;
    int64_t dsteps;
  };
  std::vector<Row> rows;
  {
    Stage stage("embeddings");
    for (const auto &[slot, codes] : user) {
      Conversation &conv = *slots_[size_t(slot)];
      StepTokens in;
      in.user = codes;
      auto cols = conv.ring_.prepare(in);
      if (!cols) {
        results[slot] = std::nullopt;
        continue;
      }
      const int64_t dsteps = conv.begin_step(*cols, model_->embed_column(conv.ring_.column(cols->input)));
      rows.push_back({slot, &conv, *cols, dsteps});
    }
  }
  if (rows.empty()) return results;

  const LmWeights &w = model_->weights();
  const LmConfig &c = w.config;
  const SamplingParams &sampling = options_.sampling;
  const int64_t B = int64_t(rows.size());
  std::vector<at::Tensor> xs, ints, text_noise, audio_noise, wheres;
  std::vector<TemporalState *> states;
  std::vector<bool> splits;
  int64_t dsteps = 0;
  bool keep_logits = false;
  for (const auto &r : rows) {
    StepBuffers &io = r.conv->io_;
    xs.push_back(io.x);
    ints.push_back(io.ints);
    text_noise.push_back(io.text_noise);
    audio_noise.push_back(io.audio_noise);
    wheres.push_back(io.ints.narrow(0, 0, 3));
    states.push_back(&r.conv->temporal_);
    splits.push_back(r.conv->temporal_.kv.split());
    dsteps = std::max(dsteps, r.dsteps);
    keep_logits |= r.conv->options_.keep_logits;
  }

  at::Tensor h;
  {
    Stage stage("temporal");
    h = temporal_step_batch(w, at::cat(xs, 0), states, wheres, splits);
    h = rms_norm(h, w.out_norm, c.norm == "rms_norm_f32");
  }
  at::Tensor tokens = at::zeros({B, 1 + c.dep_q}, h.options().dtype(at::kLong));
  at::Tensor logits, text;
  {
    Stage stage("sampling");
    logits = at::linear(h, w.text_linear).view({B, -1}).to(at::kFloat);
    text = sample_with_noise(logits, sampling.greedy, sampling.temp_text, sampling.top_k_text,
                             at::cat(text_noise, 0));
    tokens.select(1, 0).copy_(text);
  }
  at::Tensor audio_logits;
  if (dsteps > 0) {
    Stage stage("depformer");
    at::Tensor in = at::stack(ints, 0);
    DepformerIo d;
    d.h = h;
    // The depformer starts from the given text token where there is one.
    d.text = at::where(in.select(1, StepInts::kTextGiven) != 0, in.select(1, StepInts::kText), text);
    d.forced = in.narrow(1, StepInts::kForced, c.dep_q);
    d.forced_mask = in.narrow(1, StepInts::kForced + c.dep_q, c.dep_q) != 0;
    d.noise = at::cat(audio_noise, 1);
    d.tokens = tokens.narrow(1, 1, c.dep_q);
    if (keep_logits) d.logits = audio_logits = at::zeros({B, c.dep_q, c.card}, h.options().dtype(at::kFloat));
    // Rows needing fewer steps ignore the extra ones (given tokens are fed
    // forward, so earlier steps do not depend on later ones).
    depformer_run(w, d, dsteps, sampling);
  }

  at::Tensor host = tokens.to(at::kCPU);
  for (int64_t b = 0; b < B; ++b) {
    const Row &r = rows[size_t(b)];
    if (r.conv->options_.keep_logits) {
      r.conv->text_logits_ = logits[b].to(at::kCPU);
      r.conv->audio_logits_ = audio_logits.defined() ? audio_logits[b].narrow(0, 0, r.dsteps).to(at::kCPU)
                                                     : at::empty({0, c.card}, at::kFloat);
    }
    results[r.slot] = r.conv->end_step(r.cols, host[b].data_ptr<int64_t>(), r.dsteps);
  }
  return results;
}

}  // namespace personaplex::lm
