// The depth transformer: within one temporal step, predicts the audio
// codebooks one after another. Step k has its own weights (input projection,
// attention, MLP, head); its input is depformer_in[k](h) plus the embedding
// of the previous token (the text token for k = 0). No positional embedding;
// its KV cache holds one slot per step and starts empty every temporal step
// (the last step sees all steps but the first, as in the reference).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "lm/sampling.h"
#include "lm/weights.h"

namespace personaplex::lm {

struct DepformerResult {
  at::Tensor tokens;  // int64 [B, steps] sampled at each step
  at::Tensor logits;  // fp32 [B, steps, card] (only when asked for)
};

// Runs steps 0..steps-1. h: [B, 1, dim] (the temporal output after out_norm);
// text: int64 [B] the text token of this step. forced: int64 [B, dep_q] on h's
// device, the tokens to feed forward where forced_mask is true ([B, dep_q]
// bool) instead of the sampled ones (teacher forcing).
DepformerResult depformer_run(const LmWeights &w, const at::Tensor &h, const at::Tensor &text,
                              const at::Tensor &forced, const at::Tensor &forced_mask,
                              int64_t steps, const SamplingParams &sampling,
                              at::Generator &generator, bool keep_logits);

}  // namespace personaplex::lm
