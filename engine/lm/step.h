// One model step (temporal transformer, text head, depformer) on fixed
// device tensors: the host writes the inputs, the step reads nothing else
// from it, so on CUDA it can be captured once as a graph and replayed.
#pragma once

#include <ATen/ATen.h>

#include "lm/sampling.h"
#include "lm/temporal.h"
#include "lm/weights.h"

namespace personaplex::lm {

// Layout of StepBuffers::ints.
struct StepInts {
  static constexpr int64_t kPosition = 0, kSlot = 1, kPinnedPosition = 2, kText = 3, kTextGiven = 4;
  static constexpr int64_t kForced = 5;  // dep_q given audio tokens, then dep_q flags
  static int64_t size(int64_t dep_q) { return kForced + 2 * dep_q; }
};

// A step's noise: the text's race, then each depformer step's.
struct NoiseLayout {
  int64_t text = 0, audio = 0, dep_q = 0;  // race sizes, depformer steps
  NoiseLayout(const LmConfig &c, const SamplingParams &sampling);
  int64_t size() const { return text + dep_q * audio; }
  // Views of rows [R, size()]: [R, text] and [R, dep_q, audio].
  at::Tensor text_of(const at::Tensor &rows) const { return rows.narrow(1, 0, text); }
  at::Tensor audio_of(const at::Tensor &rows) const {
    return rows.narrow(1, text, dep_q * audio).view({rows.size(0), dep_q, audio});
  }
};

struct StepBuffers {
  // Inputs.
  at::Tensor x;            // [1, 1, dim]: the input embedding, model dtype
  at::Tensor ints;         // int64 [StepInts::size(dep_q)]
  // fp32 [1, NoiseLayout::size]: a step's exponential draws, drawn at once
  // (one launch); text_noise and audio_noise are views of it.
  at::Tensor noise;
  at::Tensor text_noise;   // fp32 [1, race]: exponential draws for the text
  at::Tensor audio_noise;  // fp32 [dep_q, 1, race]: ... for each depformer step
  // Outputs.
  at::Tensor tokens;        // int64 [1 + dep_q]: sampled text, sampled audio
  at::Tensor text_logits;   // fp32 [1, text_out]
  at::Tensor audio_logits;  // fp32 [1, dep_q, card]
};

StepBuffers make_step_buffers(const LmWeights &w, const SamplingParams &sampling);

// `depformer_steps` codebooks are predicted (0..dep_q); `split`: the KV
// cache's split() for this step.
void model_step(const LmWeights &w, const SamplingParams &sampling, TemporalState &temporal,
                StepBuffers &io, int64_t depformer_steps, bool split);

}  // namespace personaplex::lm
