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

#include <vector>

#include "lm/pinned_kv_cache.h"
#include "lm/weights.h"

namespace personaplex::lm {

class PrefillRendezvous;

struct TemporalState {
  PinnedKVCache kv;
  int64_t offset = 0;  // steps run (RoPE position of the next one)
  at::Tensor freqs;    // RoPE frequencies, fp32 [head_dim / 2]
  // Where prompt chunks meet others' (a batch server's; none: alone).
  PrefillRendezvous *rendezvous = nullptr;
  void reset();
  void pin(int64_t steps) { kv.pin(steps); }
};

// KV slots: context - 1 (see temporal.cpp).
int64_t kv_capacity(const LmConfig &config);
at::Tensor rope_frequencies(const LmWeights &w);  // fp32 [head_dim / 2]

// The layers' norms in the order a Residual stream takes them: the first
// layer's attention norm, and after layer i the next layer's (none after
// the last). Norms are never kept in host memory.
at::Tensor first_norm(const LmWeights &w);
at::Tensor next_norm(const LmWeights &w, size_t layer);
TemporalState new_temporal_state(const LmWeights &w, KvFormat format = KvFormat::kModelDtype);
// Over a given cache (a view of a batch server's row).
TemporalState new_temporal_state(const LmWeights &w, PinnedKVCache kv);
// The KV storage of `rows` conversations (a batch server's slots).
KVRows new_kv_rows(const LmWeights &w, int64_t rows, KvFormat format = KvFormat::kModelDtype);

// Where the step's key and value go, on the device: int64 [3] = (position,
// slot, position the pinned keys are seen from).
// x: [B, 1, dim] -> [B, 1, dim] (before out_norm). `split`: the kv cache's
// split() for this step. Touches neither the host layout nor state.offset,
// and reads nothing from the host: capturable.
at::Tensor temporal_step(const LmWeights &w, const at::Tensor &x, TemporalState &state,
                         const at::Tensor &where, bool split);

// Whether `steps` more steps fit the cache in order, neither rolling over nor
// splitting (what temporal_prefill needs).
bool prefill_fits(const TemporalState &state, int64_t steps);

// T steps at once, the same as T temporal_step calls (causal within the
// chunk): x [B, T, dim] -> [B, T, dim] (before out_norm). Writes the KV of
// all T steps and advances the cache and state.offset. Eager only (host
// arithmetic); throws Error unless prefill_fits(state, T).
at::Tensor temporal_prefill(const LmWeights &w, const at::Tensor &x, TemporalState &state);

// Chunks of several states over the same weights in one pass: their rows
// share each product (the weights read once), each attends over its own
// cache. The same as temporal_prefill on each, up to the products' rounding
// (rows in one product are summed as in separate ones, but the library may
// block a larger product differently). x of each [1, T_i, dim]; the states
// distinct.
struct PrefillChunk {
  at::Tensor input;
  TemporalState *state;
};
std::vector<at::Tensor> temporal_prefill_chunks(const LmWeights &w, const std::vector<PrefillChunk> &chunks);

}  // namespace personaplex::lm
