// The depth transformer: within one temporal step, predicts the audio
// codebooks one after another. Step k has its own weights (input projection,
// attention, MLP, head); its input is depformer_in[k](h) plus the embedding
// of the previous token (the text token for k = 0). No positional embedding;
// its KV cache holds one slot per step and starts empty every temporal step
// (the last step sees all steps but the first, as in the reference).
#pragma once

#include <ATen/ATen.h>

#include "lm/sampling.h"
#include "lm/weights.h"

namespace personaplex::lm {

struct DepformerIo {
  at::Tensor h;            // [B, 1, dim]: the temporal output after out_norm
  at::Tensor text;         // int64 [B]: this step's text token
  at::Tensor forced;       // int64 [B, dep_q]: given tokens, fed forward instead of
  at::Tensor forced_mask;  // bool [B, dep_q]    the sampled ones where true
  at::Tensor noise;        // fp32 [dep_q, B, race]: exponential draws (sampling)
  at::Tensor tokens;       // out: int64 [B, dep_q], steps 0..steps-1 written
  at::Tensor logits;       // out (optional): fp32 [B, dep_q, card]
};

// Runs steps 0..steps-1. Reads nothing from the host (capturable).
void depformer_run(const LmWeights &w, DepformerIo &io, int64_t steps, const SamplingParams &sampling);

}  // namespace personaplex::lm
