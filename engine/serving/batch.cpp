#include "serving/batch.h"

#include <algorithm>
#include <cstring>

#include "core/env_choice.h"
#include "core/error.h"
#include "core/thread_stream.h"
#include "serving/stage_timer.h"
#include "lm/step.h"
#include "lm/temporal.h"
#include "serving/temporal_batch.h"

namespace personaplex::serving {

using namespace lm;  // the model this layer serves

namespace {
// The most steps of prompts one pass over the weights takes (about eight
// roles of the released model's longest chunk).
constexpr int64_t kMostRowsTogether = 2048;
}  // namespace

BatchServer::BatchServer(std::shared_ptr<const LmModel> model, int64_t max_slots, ConversationOptions options,
                         size_t prompt_cache)
    : model_(std::move(model)),
      options_(options),
      kv_(new_kv_rows(model_->weights(), std::max<int64_t>(max_slots, 1), model_->kv_format())),
      buffers_(*model_, std::max<int64_t>(max_slots, 1), options_.sampling),
      graphs_(model_->device(), options_.cuda_graphs),
      prompts_(prompt_cache) {
  if (max_slots <= 0) throw Error("batch server: max_slots must be positive");
  if (const auto window = prefill_together(); window.count() > 0)
    rendezvous_ = std::make_unique<PrefillRendezvous>(window, kMostRowsTogether);
  slots_.resize(size_t(max_slots));
  used_.assign(size_t(max_slots), false);
  reserved_.assign(size_t(max_slots), 0);
  for (int64_t s = 0; s < max_slots; ++s) free_.insert(s);
  if (graphs_.enabled()) preparer_ = std::make_unique<GraphPreparer>(graphs_);
}

BatchServer::~BatchServer() { preparer_.reset(); }

std::chrono::microseconds BatchServer::prefill_together() {
  const std::optional<double> ms = env_number("PERSONAPLEX_PREFILL_TOGETHER_MS");
  if (!ms || !(*ms > 0) || *ms > 1000) return std::chrono::microseconds(0);
  return std::chrono::microseconds(int64_t(*ms * 1000));
}

bool BatchServer::in_use(int64_t slot) const {
  return slot >= 0 && slot < max_slots() && used_[size_t(slot)];
}

Conversation &BatchServer::conversation(int64_t slot) {
  if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
  return *slots_[size_t(slot)];
}

int64_t BatchServer::join(const Prompt &prompt, uint64_t seed, const WarningFn &warn) {
  const int64_t slot = reserve(seed);
  try {
    prefill(slot, prompt, warn);
  } catch (...) {
    release(slot);
    throw;
  }
  activate(slot);
  return slot;
}

int64_t BatchServer::reserve(uint64_t seed) {
  if (free_.empty()) throw BusyError("batch server: all " + std::to_string(max_slots()) + " slots are in use");
  const int64_t slot = *free_.begin();
  auto &conv = slots_[size_t(slot)];
  if (!conv) {
    ConversationOptions o = options_;
    o.seed = seed;
    o.cuda_graphs = false;
    TemporalState temporal = new_temporal_state(model_->weights(), PinnedKVCache(kv_, slot));
    temporal.rendezvous = rendezvous_.get();
    conv.reset(new Conversation(model_, o, std::move(temporal)));
  } else {
    conv->reset(seed);
  }
  free_.erase(slot);
  reserved_[size_t(slot)] = 1;
  return slot;
}

bool BatchServer::prefill(int64_t slot, const Prompt &prompt, const WarningFn &warn, bool use_cache,
                          bool *voice_cached) {
  if (slot < 0 || slot >= max_slots() || !reserved_[size_t(slot)])
    throw Error("batch server: slot " + std::to_string(slot) + " is not reserved");
  // On the thread's own stream, beside the steps: neither behind them nor
  // holding them up (the row steps only once its prompts have run).
  bool cached = false;
  Conversation &conv = *slots_[size_t(slot)];
  PrefillRendezvous::Expecting expecting(rendezvous_.get());  // other joins' chunks may wait for this one's
  on_thread_stream_and_wait(model_->device(), [&] {
    if (use_cache) cached = prompts_.run(conv, prompt, warn, voice_cached);
    else run_prompts(conv, prompt, warn);
  });
  return cached;
}

void BatchServer::activate(int64_t slot) {
  if (slot < 0 || slot >= max_slots() || !reserved_[size_t(slot)])
    throw Error("batch server: slot " + std::to_string(slot) + " is not reserved");
  // The slot its idle row wrote while reserved holds nothing.
  kv_.written[slot][kv_.allocated() - 1] = false;
  reserved_[size_t(slot)] = 0;
  used_[size_t(slot)] = true;
}

void BatchServer::release(int64_t slot) {
  if (slot < 0 || slot >= max_slots() || !reserved_[size_t(slot)]) return;
  reserved_[size_t(slot)] = 0;
  free_.insert(slot);
}

void BatchServer::leave(int64_t slot) {
  if (!in_use(slot)) throw Error("batch server: slot " + std::to_string(slot) + " is not in use");
  used_[size_t(slot)] = false;
  free_.insert(slot);
}

void BatchServer::stage_row(const Row &r) {
  const LmConfig &c = model_->config();
  Conversation &conv = *r.conv;
  int64_t *row = buffers_.host.data_ptr<int64_t>() + r.slot * buffers_.host.size(1);
  const std::vector<int64_t> column = conv.ring_.column(r.cols.input);
  const std::vector<int64_t> ints = conv.step_ints(r.cols);
  std::copy(column.begin(), column.end(), row);
  std::copy(ints.begin(), ints.end(), row + BatchInts::step_ints(c));
  row[BatchInts::split(c)] = conv.temporal_.kv.split();
  if (!conv.noise_drawn_ahead_) conv.draw_noise(buffers_.row_noise(r.slot));
  conv.noise_drawn_ahead_ = false;
  if (conv.record_) conv.embeddings_.push_back(model_->embed_column(column).to(at::kCPU));
}

// Each stepping row's next noise, drawn once the step has read this one,
// beside the stream the step's tokens come back on: one launch a row that
// the host makes while the GPU runs the step (at batch 64, most of what
// staging a step cost the host), not while the GPU waits for the next
// step's inputs. A row that does not step next time keeps its draw for the
// step it takes: its generator makes the same draws in the same order as
// alone.
void BatchServer::draw_noise_ahead(const std::vector<Row> &rows) {
  noise_ahead_.run(model_->device(), [&] {
    for (const Row &r : rows) {
      r.conv->draw_noise(buffers_.row_noise(r.slot));
      r.conv->noise_drawn_ahead_ = true;
    }
  });
}

void BatchServer::stage_idle(int64_t slot) {
  const LmConfig &c = model_->config();
  int64_t *row = buffers_.host.data_ptr<int64_t>() + slot * buffers_.host.size(1);
  std::fill(row, row + buffers_.host.size(1), 0);
  // Embeds to zero: finite, whatever the row computes.
  std::fill(row, row + c.num_streams(), -1);
  // Its key and value go where its next step writes first (a dead slot),
  // the same slot as the row's oldest or newest entries never.
  const Conversation *conv = slots_[size_t(slot)].get();
  if (conv && used_[size_t(slot)]) {
    row[BatchInts::step_ints(c) + StepInts::kPosition] = conv->temporal_.offset;
    row[BatchInts::step_ints(c) + StepInts::kSlot] = conv->temporal_.kv.next_slot();
  } else if (reserved_[size_t(slot)]) {
    // Its prompts are being written from slot 0 on: the last allocated slot
    // is out of their reach (prompts are capped well below the context).
    row[BatchInts::step_ints(c) + StepInts::kSlot] = kv_.allocated() - 1;
  }
  row[BatchInts::step_ints(c) + StepInts::kPinnedPosition] = kv_.capacity - 1;
}

BatchShape BatchServer::shape_of(const std::vector<Row> &rows, int64_t ahead, int64_t more_rows) const {
  BatchShape s;
  s.rows = std::min(rows.back().slot + 1 + more_rows, max_slots());
  int64_t extent = 0;  // slots the stepping rows will have written
  for (const Row &r : rows) {
    const PinnedKVCache &kv = r.conv->temporal_.kv;
    extent = std::max(extent, std::min(kv.end() + 1 + ahead, kv.capacity()));
    if (kv.split()) s.pinned = std::max(s.pinned, kv.pinned());
    s.dsteps = std::max(s.dsteps, r.dsteps);
  }
  s.span = attention_span(kv_, extent);
  return static_shapes_.value_or(graphs_.enabled()) ? static_shape(s, kv_) : s;
}

void BatchServer::run_model_step(const BatchShape &shape) {
  batch_model_step(*model_, options_.sampling, kv_, buffers_, shape, false);
}

// The spans the rows will need about five seconds ahead, each with every
// batch width up to the slots: a call that joins then finds its step
// captured, whatever the width it takes the batch to.
void BatchServer::prepare_next(const std::vector<Row> &rows, const BatchShape &shape) {
  constexpr int64_t kAhead = 64;
  // Only once the step has been captured: before, a capture would not take.
  if (!preparer_ || graphs_.graphs() == 0) return;
  for (const int64_t ahead : {int64_t(0), kAhead}) {
    for (int64_t more = 0;; ++more) {
      const BatchShape next = shape_of(rows, ahead, more);
      const std::array<int64_t, 4> key = next.key();
      if (key != shape.key()) preparer_->ask({key.begin(), key.end()}, [this, next] { run_model_step(next); });
      if (next.rows >= max_slots()) break;
      more = next.rows - (rows.back().slot + 1);  // on to the next width
    }
  }
}

BatchShape BatchServer::join_shape(int64_t slot, int64_t ahead) const {
  if (slot < 0 || slot >= max_slots() || !(reserved_[size_t(slot)] || used_[size_t(slot)]))
    throw Error("batch server: slot " + std::to_string(slot) + " is neither reserved nor in use");
  // Its rows in live steps: the members and the joiner, predicting the
  // agent's codebooks (the user's are given: their depformer steps are
  // skipped unless every step runs).
  std::vector<Row> rows;
  const int64_t dep_q = model_->config().dep_q;
  const int64_t agent = std::min<int64_t>(dep_q, lm::kAudioCodebooks);
  const int64_t live = options_.full_depformer ? dep_q : agent;
  for (int64_t s = 0; s < max_slots(); ++s) {
    if (!used_[size_t(s)] && s != slot) continue;
    const Conversation *conv = slots_[size_t(s)].get();
    int64_t dsteps = live;
    // A row's next step right after its prompts (the joiner's, and a
    // member's that joined meanwhile and has not stepped): the agent's
    // delayed codebooks of that step are still the prompts' own, so it
    // takes fewer depformer steps. Each row counts its own.
    if (ahead == 0 && !options_.full_depformer) {
      const int64_t target = conv->ring_.offset() % conv->ring_.cols();
      dsteps = 0;
      for (int64_t k = agent; k > 0 && dsteps == 0; --k)
        if (!conv->ring_.given(k, target)) dsteps = k;
    }
    rows.push_back({s, const_cast<Conversation *>(conv), {}, dsteps});
  }
  return shape_of(rows, ahead);
}

std::vector<BatchServer::Capture> BatchServer::join_captures(int64_t slot) const {
  std::vector<Capture> out;
  if (!graphs_.enabled() || graphs_.graphs() == 0) return out;
  if (slot < 0 || slot >= max_slots() || !reserved_[size_t(slot)]) return out;
  constexpr int64_t kAhead = 64;
  for (const int64_t ahead : {int64_t(0), int64_t(1), kAhead}) {
    const BatchShape shape = join_shape(slot, ahead);
    if (out.empty() || out.back().key != shape.key()) out.push_back({shape.key(), shape});
  }
  return out;
}

bool BatchServer::wait_prepared(std::chrono::milliseconds timeout) {
  return !preparer_ || preparer_->wait_idle(timeout);
}

void BatchServer::capture_ahead(const std::vector<Capture> &captures) {
  for (const Capture &c : captures)
    graphs_.prepare({c.key.begin(), c.key.end()}, [this, shape = c.shape] { run_model_step(shape); });
}

void BatchServer::finish(const std::vector<Row> &rows, const BatchShape &shape,
                         std::map<int64_t, std::optional<StepResult>> &results) {
  const LmConfig &c = model_->config();
  const int64_t R = shape.rows;
  // One transfer for everything sampled, one per kind of logits kept.
  at::Tensor tokens = buffers_.tokens.narrow(0, 0, R).to(at::kCPU);
  at::Tensor text_logits, audio_logits;
  if (options_.keep_logits) {
    text_logits = buffers_.text_logits.narrow(0, 0, R).to(at::kCPU);
    audio_logits = buffers_.audio_logits.narrow(0, 0, R).to(at::kCPU);
  }
  for (const Row &r : rows) {
    if (options_.keep_logits) {
      r.conv->text_logits_ = text_logits[r.slot].clone();
      r.conv->audio_logits_ = shape.dsteps > 0 ? audio_logits[r.slot].narrow(0, 0, r.dsteps).clone()
                                               : at::empty({0, c.card}, at::kFloat);
    }
    results[r.slot] = r.conv->end_step(r.cols, tokens[r.slot].data_ptr<int64_t>(), r.dsteps);
  }
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
  BatchShape shape;
  {
    Stage stage("inputs");
    // The noise drawn ahead lands before this step's rows are staged: a
    // slot left and joined again draws into its row after it.
    noise_ahead_.join(model_->device());
    for (const auto &[slot, codes] : user) {
      Conversation &conv = *slots_[size_t(slot)];
      StepTokens in;
      in.user = codes;
      auto cols = conv.ring_.prepare(in);
      if (!cols) {
        results[slot] = std::nullopt;
        continue;
      }
      rows.push_back({slot, &conv, *cols, conv.depformer_steps(cols->target)});
    }
    if (rows.empty()) return results;
    shape = shape_of(rows);
    if (graphs_.enabled() && graphs_.graphs() > 0)
      shape = covering_shape(shape, kv_, [this](const BatchShape &s) {
        const std::array<int64_t, 4> key = s.key();
        return graphs_.has({key.begin(), key.end()});
      });
    auto next = rows.begin();
    for (int64_t s = 0; s < shape.rows; ++s) {
      if (next != rows.end() && next->slot == s) stage_row(*next++);
      else stage_idle(s);
    }
    buffers_.upload(shape.rows);
  }

  last_shape_ = shape;
  if (graphs_.enabled()) {
    Stage stage("graph");
    const std::array<int64_t, 4> key = shape.key();
    graph_steps_ += graphs_.run({key.begin(), key.end()}, [&] { run_model_step(shape); });
    prepare_next(rows, shape);
  } else {
    batch_model_step(*model_, options_.sampling, kv_, buffers_, shape, true);
  }
  draw_noise_ahead(rows);
  finish(rows, shape, results);
  return results;
}

}  // namespace personaplex::serving
