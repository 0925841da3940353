// A step's attention over the temporal KV cache as one fused CUDA kernel
// (cuda/decode_attention.h), for the single and the batched step alike: one
// query per row and head, the cache's written slots, the pinned prompt
// scored from the end of the context on split rows. Where the build has no
// kernels, on the CPU, or for tensors the kernel does not take, the caller
// computes the same with libtorch.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "lm/kv_layer.h"

namespace personaplex::lm {

struct DecodeQuery {
  at::Tensor q;        // [R, H, 1, D]: at each row's own position
  at::Tensor q_pin;    // [R, H, 1, D] seen from the end of the context, or undefined (no row split)
  at::Tensor written;  // bool [R, allocated] (or [allocated] for one row)
  at::Tensor pinned;   // bool like written, or undefined
  at::Tensor split;    // bool [R], or undefined (every row split when q_pin is given)
  int64_t span = 0;         // slots looked at (the rest are not written)
  int64_t pinned_span = 0;  // pinned slots looked at
  at::Tensor filled;        // int32 [R] from written_extent(written), or undefined
};

// Per row, one past its last written slot (0 for none): int32 [R] from
// written bool [R, allocated] (or [allocated]). Given to the kernel, a step
// that is early in its conversation reads only that part of the cache,
// inside a captured graph too; the written flags still decide every slot,
// so the result is the same.
at::Tensor written_extent(const at::Tensor &written);

// What a step gives the kernel as DecodeQuery::filled: written_extent on
// CUDA where PERSONAPLEX_ATTENTION_SPAN=written chooses it (a choice to
// measure, not yet the default: it has not run on a GPU), else undefined.
at::Tensor chosen_written_extent(const at::Tensor &written);

// [R, H, 1, D] in q's dtype; nothing where the kernel does not run.
// `kv`: rows 0..R-1 of the cache, every slot allocated.
std::optional<at::Tensor> fused_decode_attention(const DecodeQuery &query, const KvLayer &kv);

}  // namespace personaplex::lm
