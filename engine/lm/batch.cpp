#include "lm/batch.h"

#include <algorithm>
#include <tuple>

#include "core/error.h"
#include "lm/depformer.h"
#include "lm/ops.h"
#include "lm/stage_timer.h"
#include "lm/step.h"
#include "lm/temporal_batch.h"

namespace personaplex::lm {

BatchServer::BatchServer(std::shared_ptr<const LmModel> model, int64_t max_slots, ConversationOptions options)
    : model_(std::move(model)), options_(options) {
  if (max_slots <= 0) throw Error("batch server: max_slots must be positive");
  const LmWeights &w = model_->weights();
  kv_ = new_kv_rows(w, max_slots);
  freqs_ = rope_frequencies(w);
  const StepBuffers idle = make_step_buffers(w, options_.sampling);
  idle_x_ = idle.x;
  idle_ints_ = idle.ints;
  slots_.resize(size_t(max_slots));
  used_.assign(size_t(max_slots), false);
  for (int64_t s = 0; s < max_slots; ++s) free_.insert(s);
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
  const int64_t slot = *free_.begin();
  auto &conv = slots_[size_t(slot)];
  if (!conv) {
    ConversationOptions o = options_;
    o.seed = seed;
    o.cuda_graphs = false;
    conv.reset(new Conversation(model_, o, new_temporal_state(model_->weights(), PinnedKVCache(kv_, slot))));
  } else {
    conv->reset(seed);
  }
  run_prompts(*conv, prompt, warn);
  free_.erase(slot);
  used_[size_t(slot)] = true;
  return slot;
}

void BatchServer::leave(int64_t slot) {
  if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
  used_[size_t(slot)] = false;
  free_.insert(slot);
}

std::pair<at::Tensor, at::Tensor> BatchServer::temporal(const std::vector<Row> &rows) {
  const LmWeights &w = model_->weights();
  // Rows 0..R-1 of the KV storage; those without input get idle inputs.
  const int64_t N = int64_t(rows.size()), R = rows.back().slot + 1;
  std::vector<at::Tensor> xs(size_t(R), idle_x_), ints(size_t(R), idle_ints_);
  // One upload (staged at once, no wait for the device): the stepping rows,
  // then a split flag per row.
  std::vector<int64_t> index(size_t(N + R), 0);
  RowsStep in;
  int64_t extent = 0;  // slots the stepping rows will have written
  for (int64_t n = 0; n < N; ++n) {
    const Row &r = rows[size_t(n)];
    const PinnedKVCache &kv = r.conv->temporal_.kv;
    xs[size_t(r.slot)] = r.conv->io_.x;
    ints[size_t(r.slot)] = r.conv->io_.ints;
    index[size_t(n)] = r.slot;
    extent = std::max(extent, std::min(kv.end() + 1, kv.capacity()));
    if (kv.split()) {
      index[size_t(N + r.slot)] = 1;
      in.pinned = std::max(in.pinned, kv.pinned());
    }
  }
  at::Tensor all_ints = at::stack(ints, 0);
  at::Tensor device_index = at::tensor(index, at::kLong).to(model_->device(), /*non_blocking=*/true);
  in.x = at::cat(xs, 0);
  in.where = all_ints.narrow(1, 0, 3);
  in.rows = device_index.narrow(0, 0, N);
  in.split = device_index.narrow(0, N, R) != 0;
  in.freqs = freqs_;
  in.span = attention_span(kv_, extent);
  at::Tensor h = rms_norm(temporal_step_rows(w, in, kv_), w.out_norm, w.config.norm == "rms_norm_f32");
  return {h, N == R ? all_ints : all_ints.index_select(0, in.rows)};
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
  std::vector<at::Tensor> text_noise, audio_noise;
  int64_t dsteps = 0;
  bool keep_logits = false;
  for (const auto &r : rows) {
    text_noise.push_back(r.conv->io_.text_noise);
    audio_noise.push_back(r.conv->io_.audio_noise);
    dsteps = std::max(dsteps, r.dsteps);
    keep_logits |= r.conv->options_.keep_logits;
  }

  at::Tensor h, ints;
  {
    Stage stage("temporal");
    std::tie(h, ints) = temporal(rows);
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
    DepformerIo d;
    d.h = h;
    // The depformer starts from the given text token where there is one.
    d.text = at::where(ints.select(1, StepInts::kTextGiven) != 0, ints.select(1, StepInts::kText), text);
    d.forced = ints.narrow(1, StepInts::kForced, c.dep_q);
    d.forced_mask = ints.narrow(1, StepInts::kForced + c.dep_q, c.dep_q) != 0;
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
