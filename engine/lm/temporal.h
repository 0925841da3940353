// The temporal (Helium) transformer of the LM, one step at a time, over a
// PinnedKVCache: RMSNorm, causal self-attention with interleaved RoPE at
// absolute positions, SiLU-gated MLP.
//
// Until the context is exceeded this is exactly the reference. Past it, the
// reference forgets the oldest steps, prompts included; with pinned steps the
// cache keeps the prompt and rolls the rest, and the pinned keys are seen as
// if they sat just before the oldest rolling step (their rotary phase is
// taken from a query placed at the end of the context), so relative
// distances stay within what the model was trained on.
#pragma once

#include <ATen/ATen.h>

#include "lm/pinned_kv_cache.h"
#include "lm/weights.h"

namespace personaplex::lm {

struct TemporalState {
  PinnedKVCache kv;
  int64_t offset = 0;  // steps run (RoPE position of the next one)
  at::Tensor freqs;    // RoPE frequencies, fp32 [head_dim / 2]
  void reset();
  void pin(int64_t steps) { kv.pin(steps); }
};

// KV slots: context - 1 (see temporal.cpp).
int64_t kv_capacity(const LmConfig &config);
TemporalState new_temporal_state(const LmWeights &w);

// Where the step's key and value go, on the device: int64 [3] = (position,
// slot, position the pinned keys are seen from).
// x: [B, 1, dim] -> [B, 1, dim] (before out_norm). `split`: the kv cache's
// split() for this step. Touches neither the host layout nor state.offset,
// and reads nothing from the host: capturable.
at::Tensor temporal_step(const LmWeights &w, const at::Tensor &x, TemporalState &state,
                         const at::Tensor &where, bool split);

}  // namespace personaplex::lm
