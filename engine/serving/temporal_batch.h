// One temporal transformer step of a batch server's conversations, with one
// attention call per layer for all of them: rows 0..R-1 of a KVRows hold
// their caches, and each row attends over its own written slots (its
// PinnedKVCache view's, so the result is what temporal_step gives alone).
// Every row in the range computes and writes its key and value at its
// `where` slot: rows that do not step are given the slot their next step
// will overwrite anyway (PinnedKVCache::next_slot, dead until then), so
// their garbage is never read, and the shapes stay the same whichever rows
// step (what a CUDA graph needs).
#pragma once

#include <ATen/ATen.h>

#include "lm/kv_rows.h"
#include "lm/weights.h"

namespace personaplex::serving {

using lm::KVRows;
using lm::LmWeights;

struct RowsStep {
  at::Tensor x;      // [R, 1, dim]: each row's input (finite values in rows that do not step)
  at::Tensor where;  // int64 [R, 3]: temporal_step's `where` per row
  at::Tensor split;  // bool [R]: rows whose cache is split (needed when pinned > 0)
  at::Tensor freqs;  // RoPE frequencies, fp32 [head_dim / 2]
  // Slots attended (a multiple of 16 within the allocation): covers every
  // stepping row's written slots, this step's included. Rows that do not
  // step always have a written slot below it (slots fill from 0).
  int64_t span = 0;
  // Pinned slots looked at for split rows (at least the most pinned slots
  // of a split row, at most span); 0 when no row is split.
  int64_t pinned = 0;
};

// The rows' outputs [R, 1, dim] (before out_norm). Writes every row's key,
// value and written flag at its slot; reads nothing from the host.
at::Tensor temporal_step_rows(const LmWeights &w, const RowsStep &in, KVRows &kv);

// `steps` slots rounded up to 16, within the allocation.
int64_t attention_span(const KVRows &kv, int64_t steps);

}  // namespace personaplex::serving
