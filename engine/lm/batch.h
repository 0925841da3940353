// Lock-step serving of several conversations on one shared model: each
// step runs one temporal transformer pass and one depformer pass with a
// batch row per conversation that has input this step. Every slot keeps its
// own token ring, KV cache (its own positions, pinning and roll-over),
// generator and step count, so its outputs are those it would produce
// alone: the same tokens greedy, the same draws sampled with the same seed
// (each slot's noise comes from its own generator, in its own order).
// Conversations join (prompts prefilled) and leave at any step; a freed slot
// is reused, reset, by the next join. Eager (no CUDA graphs).
//
// The slots' temporal KV caches are the rows of one KVRows (each
// conversation works on a view of its row), so the temporal transformer runs
// one attention call per layer for every stepping slot: over the rows
// 0..(highest stepping slot), which joins keep mostly contiguous by taking
// the lowest free slot.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "lm/conversation.h"
#include "lm/kv_rows.h"
#include "lm/prompt.h"

namespace personaplex::lm {

class BatchServer {
 public:
  // `options` apply to every slot (sampling, pinning, keep_logits); the
  // seed is given per join.
  BatchServer(std::shared_ptr<const LmModel> model, int64_t max_slots, ConversationOptions options = {});

  // Takes a free slot, runs the prompt there; throws Error when all slots
  // are taken (or the prompt is bad: the slot stays free).
  int64_t join(const Prompt &prompt, uint64_t seed, const WarningFn &warn = {});
  // Frees the slot; throws Error when it is not in use.
  void leave(int64_t slot);

  // One step of the given slots (each with its user's n_q - 8 codes), all at
  // once; the others do not move. Returns each given slot's result (nullopt
  // while its delays fill). Throws Error on an unused slot or bad codes
  // before anything runs.
  std::map<int64_t, std::optional<StepResult>> step(const std::map<int64_t, std::vector<int64_t>> &user);

  int64_t max_slots() const { return int64_t(slots_.size()); }
  int64_t active() const { return max_slots() - int64_t(free_.size()); }
  bool in_use(int64_t slot) const;
  // The slot's conversation (steps(), ring(), logits...).
  Conversation &conversation(int64_t slot);

 private:
  // A slot stepping this step, in ascending slot order.
  struct Row {
    int64_t slot;
    Conversation *conv;
    TokenRing::Columns cols;
    int64_t dsteps;
  };
  // The temporal transformer for the rows (their inputs in their io_):
  // hidden states [rows, 1, dim] after out_norm, and the rows' step ints.
  std::pair<at::Tensor, at::Tensor> temporal(const std::vector<Row> &rows);

  std::shared_ptr<const LmModel> model_;
  ConversationOptions options_;
  KVRows kv_;                      // row s: slot s's temporal KV cache
  at::Tensor freqs_;               // RoPE frequencies
  at::Tensor idle_x_, idle_ints_;  // inputs of rows in the range that do not step
  std::vector<std::unique_ptr<Conversation>> slots_;
  std::vector<bool> used_;
  std::set<int64_t> free_;  // the next join takes the lowest
};

}  // namespace personaplex::lm
