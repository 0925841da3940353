#include "lm/step.h"

#include "lm/depformer.h"
#include "lm/ops.h"

namespace personaplex::lm {

NoiseLayout::NoiseLayout(const LmConfig &c, const SamplingParams &sampling)
    : text(race_size(c.text_out(), sampling.top_k_text)),
      audio(race_size(c.card, sampling.top_k_audio)),
      dep_q(c.dep_q) {}

StepBuffers make_step_buffers(const LmWeights &w, const SamplingParams &sampling) {
  const auto &c = w.config;
  auto dev = at::TensorOptions().device(w.device());
  auto f32 = dev.dtype(at::kFloat);
  StepBuffers b;
  b.x = at::zeros({1, 1, c.dim}, dev.dtype(w.dtype));
  b.ints = at::zeros({StepInts::size(c.dep_q)}, dev.dtype(at::kLong));
  const NoiseLayout noise(c, sampling);
  b.noise = at::ones({1, noise.size()}, f32);
  b.text_noise = noise.text_of(b.noise);
  b.audio_noise = noise.audio_of(b.noise).transpose(0, 1);
  b.tokens = at::zeros({1 + c.dep_q}, dev.dtype(at::kLong));
  b.text_logits = at::zeros({1, c.text_out()}, f32);
  b.audio_logits = at::zeros({1, c.dep_q, c.card}, f32);
  return b;
}

void model_step(const LmWeights &w, const SamplingParams &sampling, TemporalState &temporal,
                StepBuffers &io, int64_t depformer_steps, bool split) {
  const auto &c = w.config;
  at::Tensor h = temporal_step(w, io.x, temporal, io.ints.narrow(0, 0, 3), split);
  h = rms_norm(h, w.out_norm, c.norm == "rms_norm_f32");
  at::Tensor logits = nn::linear(h, w.text_linear).view({1, -1}).to(at::kFloat);
  io.text_logits.copy_(logits);
  at::Tensor text = sample_with_noise(logits, sampling.greedy, sampling.temp_text, sampling.top_k_text,
                                      io.text_noise);
  io.tokens.narrow(0, 0, 1).copy_(text);
  if (depformer_steps == 0) return;
  DepformerIo d;
  d.h = h;
  // The depformer starts from the given text token where there is one.
  d.text = at::where(io.ints.narrow(0, StepInts::kTextGiven, 1) != 0,
                     io.ints.narrow(0, StepInts::kText, 1), text);
  d.forced = io.ints.narrow(0, StepInts::kForced, c.dep_q).view({1, -1});
  d.forced_mask = io.ints.narrow(0, StepInts::kForced + c.dep_q, c.dep_q).view({1, -1}) != 0;
  d.noise = io.audio_noise;
  d.tokens = io.tokens.narrow(0, 1, c.dep_q).view({1, -1});
  d.logits = io.audio_logits;
  depformer_run(w, d, depformer_steps, sampling);
}

}  // namespace personaplex::lm
