// Token sampling as the reference does it: fp32 logits / temperature,
// softmax, top-k on the probabilities, then argmax(p / Exp(1)) (an
// exponential race, equivalent to drawing from p) with the caller's
// generator. The i-th draw goes with the i-th candidate in token order (the
// first of equal scores wins), so that rounding differences that reorder
// near-equal probabilities do not change the token drawn. Greedy (or
// temperature <= 0) is a plain argmax. On CUDA, in a build with the
// engine's kernels, one launch draws it (fused_sampling.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace personaplex::lm {

struct SamplingParams {
  bool greedy = false;
  double temp_text = 0.7;
  int64_t top_k_text = 25;
  double temp_audio = 0.8;
  int64_t top_k_audio = 250;
};

// logits: [..., V] -> int64 [...] (on the logits' device).
at::Tensor sample_token(const at::Tensor &logits, bool greedy, double temperature, int64_t top_k,
                        at::Generator &generator);

// The same with the exponential draws given: noise is fp32 [..., n] with n
// = race_size(V, top_k) (unused when greedy). Reads nothing from the host.
at::Tensor sample_with_noise(const at::Tensor &logits, bool greedy, double temperature, int64_t top_k,
                             const at::Tensor &noise);
// Candidates in the race: top_k, or the whole vocabulary.
int64_t race_size(int64_t vocabulary, int64_t top_k);

// A generator for `device` (CPU or CUDA) seeded with `seed`.
at::Generator make_generator(const at::Device &device, uint64_t seed);

}  // namespace personaplex::lm
