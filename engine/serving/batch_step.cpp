#include "serving/batch_step.h"

#include <algorithm>
#include <optional>

#include "lm/depformer.h"
#include "lm/ops.h"
#include "serving/stage_timer.h"
#include "lm/step.h"
#include "lm/temporal.h"
#include "serving/temporal_batch.h"

namespace personaplex::serving {

using namespace lm;  // the model this layer serves
namespace {

// A Stage only when asked: inside a capture, a stage's synchronization
// would break it.
struct MaybeStage {
  MaybeStage(bool on, const char *name) {
    if (on) stage.emplace(name);
  }
  std::optional<Stage> stage;
};

// Graph shapes' attention spans are multiples of this many slots.
constexpr int64_t kSpanSlots = 256;

}  // namespace

int64_t round_up(int64_t n, int64_t to) { return (n + to - 1) / to * to; }

BatchShape static_shape(const BatchShape &tight, const KVRows &kv) {
  BatchShape s = tight;
  int64_t pow2 = 1;
  while (pow2 < tight.rows) pow2 *= 2;
  s.rows = tight.rows <= 8 ? pow2 : round_up(tight.rows, 8);
  s.rows = std::min(s.rows, kv.rows());
  s.span = std::min(kv.allocated(), round_up(tight.span, kSpanSlots));
  if (tight.pinned > 0) s.pinned = std::min(s.span, round_up(tight.pinned, kSpanSlots));
  return s;
}

BatchShape covering_shape(const BatchShape &shape, const KVRows &kv,
                          const std::function<bool(const BatchShape &)> &captured) {
  if (captured(shape)) return shape;
  std::optional<BatchShape> best;
  int64_t last_rows = 0;
  for (int64_t r = shape.rows; r <= kv.rows(); ++r) {
    BatchShape wide = shape;
    wide.rows = r;
    wide.rows = static_shape(wide, kv).rows;
    if (wide.rows == last_rows) continue;
    last_rows = wide.rows;
    for (int64_t span = shape.span;; span = std::min(kv.allocated(), span + kSpanSlots)) {
      BatchShape c = wide;
      c.span = span;
      const bool wider = c.rows != shape.rows || c.span != shape.span;
      if (wider && (!best || c.rows * c.span < best->rows * best->span) && captured(c)) best = c;
      if (span >= kv.allocated()) break;
    }
  }
  return best.value_or(shape);
}

int64_t BatchInts::split(const LmConfig &c) { return step_ints(c) + StepInts::size(c.dep_q); }

BatchBuffers::BatchBuffers(const LmModel &model, int64_t max_rows, const SamplingParams &sampling) {
  const LmConfig &c = model.config();
  const LmWeights &w = model.weights();
  auto dev = at::TensorOptions().device(model.device());
  auto f32 = dev.dtype(at::kFloat);
  auto host_options = at::TensorOptions().dtype(at::kLong).pinned_memory(model.device().is_cuda());
  host = at::zeros({max_rows, BatchInts::size(c)}, host_options);
  ints = at::zeros({max_rows, BatchInts::size(c)}, dev.dtype(at::kLong));
  const NoiseLayout layout(c, sampling);
  noise = at::ones({max_rows, layout.size()}, f32);
  text_noise = layout.text_of(noise);
  audio_noise = layout.audio_of(noise);
  tokens = at::zeros({max_rows, 1 + c.dep_q}, dev.dtype(at::kLong));
  text_logits = at::zeros({max_rows, c.text_out()}, f32);
  audio_logits = at::zeros({max_rows, c.dep_q, c.card}, f32);
  freqs = rope_frequencies(w);
}

void BatchBuffers::upload(int64_t rows) {
  // Pinned staging: the copy is queued without waiting. The host writes the
  // next step's rows only after this step's tokens came back, so the copy
  // is done by then.
  ints.narrow(0, 0, rows).copy_(host.narrow(0, 0, rows), /*non_blocking=*/true);
}

void batch_model_step(const LmModel &model, const SamplingParams &sampling, KVRows &kv, BatchBuffers &b,
                      const BatchShape &shape, bool stages) {
  const LmWeights &w = model.weights();
  const LmConfig &c = w.config;
  const int64_t R = shape.rows;
  const at::Tensor in = b.ints.narrow(0, 0, R);
  const at::Tensor ints = in.narrow(1, BatchInts::step_ints(c), StepInts::size(c.dep_q));
  RowsStep rs;
  {
    MaybeStage s(stages, "embeddings");
    rs.x = model.embed_columns(in.narrow(1, 0, c.num_streams()));
  }
  at::Tensor h;
  {
    MaybeStage s(stages, "temporal");
    rs.where = ints.narrow(1, 0, 3);
    rs.split = in.select(1, BatchInts::split(c)) != 0;
    rs.freqs = b.freqs;
    rs.span = shape.span;
    rs.pinned = shape.pinned;
    h = model.out_norm(temporal_step_rows(w, rs, kv));
  }
  at::Tensor text;
  {
    MaybeStage s(stages, "sampling");
    at::Tensor logits = model.text_logits(h);
    b.text_logits.narrow(0, 0, R).copy_(logits);
    text = sample_with_noise(logits, sampling.greedy, sampling.temp_text, sampling.top_k_text,
                             b.text_noise.narrow(0, 0, R));
    b.tokens.narrow(0, 0, R).select(1, 0).copy_(text);
  }
  if (shape.dsteps == 0) return;
  MaybeStage s(stages, "depformer");
  DepformerIo d;
  d.h = h;
  // The depformer starts from the given text token where there is one.
  d.text = at::where(ints.select(1, StepInts::kTextGiven) != 0, ints.select(1, StepInts::kText), text);
  d.forced = ints.narrow(1, StepInts::kForced, c.dep_q);
  d.forced_mask = ints.narrow(1, StepInts::kForced + c.dep_q, c.dep_q) != 0;
  d.noise = b.audio_noise.narrow(0, 0, R).transpose(0, 1);  // [dep_q, R, race]
  d.tokens = b.tokens.narrow(0, 0, R).narrow(1, 1, c.dep_q);
  d.logits = b.audio_logits.narrow(0, 0, R);
  // Rows needing fewer steps ignore the extra ones (given tokens are fed
  // forward, so earlier steps do not depend on later ones).
  depformer_run(w, d, shape.dsteps, sampling);
}

}  // namespace personaplex::serving
