// Prompts of the role lengths calls may bring, for a batch's warm-up on a
// GPU: a prefill chunk of a length never run before may take kernels never
// launched before (each product picks its kernel by the rows it has), and
// CUDA loads a kernel at its first launch, which may wait for the whole
// device: for every step of the running calls. Run once each at start-up,
// later joins of any of these lengths find their kernels loaded.
#pragma once

#include <cstdint>
#include <vector>

#include "lm/config.h"
#include "lm/prompt.h"

namespace personaplex::serving {

// The role chunk lengths warmed: every multiple of this many steps ...
constexpr int64_t kWarmedLengthStride = 8;
// ... up to this many role steps (or the prompt budget, if less).
constexpr int64_t kWarmedLengthMax = 264;

// `prompt`'s voice with roles whose chunks (silence, text, silence) take
// every warmed length, the text cycled from `prompt`'s own (padding when it
// has none). Lengths past the prompt budget are left out.
std::vector<lm::Prompt> role_length_prompts(const lm::Prompt &prompt, const lm::LmConfig &config);

}  // namespace personaplex::serving
