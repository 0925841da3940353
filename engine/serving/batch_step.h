// The batch server's model step on fixed device buffers: the host writes
// every row's token column and StepInts into a staging tensor, uploads it
// once, draws the rows' noise into the noise buffers; the step then embeds,
// runs the temporal transformer, samples text and runs the depformer
// without reading anything else from the host, and writes tokens and logits
// into the output buffers (one copy back). Its shape (rows, attention span,
// pinned slots, depformer steps) is all the host decides, so one shape can
// be captured once as a CUDA graph and replayed.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <functional>
#include <cstdint>

#include "lm/kv_rows.h"
#include "lm/model.h"
#include "lm/sampling.h"

namespace personaplex::serving {

using lm::KVRows;
using lm::LmConfig;
using lm::LmModel;
using lm::SamplingParams;

// What a step's computation depends on besides the buffers' contents.
struct BatchShape {
  int64_t rows = 0;     // rows 0..rows-1 are computed
  int64_t span = 0;     // KV slots attended (see RowsStep)
  int64_t pinned = 0;   // pinned slots looked at; 0: no row is split
  int64_t dsteps = 0;   // depformer steps
  std::array<int64_t, 4> key() const { return {rows, span, pinned, dsteps}; }
};

// The shapes a CUDA graph is kept for: rows rounded up (powers of two to 8,
// then multiples of 8, within the server's slots), span and pinned slots
// rounded up to multiples of 256 (within the allocation). Computing more
// rows or slots changes nothing in the stepping rows' results (extra rows
// are idle, extra slots unwritten or unpinned), only the work done.
BatchShape static_shape(const BatchShape &tight, const KVRows &kv);

// The shape a step runs with: `shape` (a static one) when `captured` says it
// has a graph, else the cheapest captured static shape that covers it (more
// rows, a longer span; the same pinned slots and depformer steps), else
// `shape`. When calls leave, the batch narrows to a width never captured at
// this span: replaying a wider graph then costs a little more work, where a
// capture would stall every call (the narrower graph is captured ahead
// meanwhile).
BatchShape covering_shape(const BatchShape &shape, const KVRows &kv,
                          const std::function<bool(const BatchShape &)> &captured);

// Layout of a row of BatchBuffers::host / ints: the token column the row
// reads (num_streams ids), its StepInts, then 1 where its cache is split.
struct BatchInts {
  static int64_t step_ints(const LmConfig &c) { return c.num_streams(); }
  static int64_t split(const LmConfig &c);
  static int64_t size(const LmConfig &c) { return split(c) + 1; }
};

struct BatchBuffers {
  BatchBuffers(const LmModel &model, int64_t max_rows, const SamplingParams &sampling);

  at::Tensor host;         // int64 [S, BatchInts::size], CPU (pinned on CUDA): staged inputs
  at::Tensor ints;         // the same on the device
  at::Tensor noise;        // fp32 [S, NoiseLayout::size]: each row's exponential draws
  at::Tensor text_noise;   // views of it: fp32 [S, race]
  at::Tensor audio_noise;  // fp32 [S, dep_q, race]
  at::Tensor tokens;       // out: int64 [S, 1 + dep_q]
  at::Tensor text_logits;  // out: fp32 [S, text_out]
  at::Tensor audio_logits; // out: fp32 [S, dep_q, card]
  at::Tensor freqs;        // RoPE frequencies

  // Rows 0..rows-1 of `host` to the device, one copy (not waiting for it).
  void upload(int64_t rows);
  // A row's noise, shaped as a Conversation's own (StepBuffers::noise).
  at::Tensor row_noise(int64_t row) const { return noise.narrow(0, row, 1); }
};

// The step for `shape` over the uploaded rows; `stages`: time its parts
// with the thread's StageTimer (never while capturing).
void batch_model_step(const LmModel &model, const SamplingParams &sampling, KVRows &kv, BatchBuffers &b,
                      const BatchShape &shape, bool stages);

}  // namespace personaplex::serving
