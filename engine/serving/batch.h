// Lock-step serving of several conversations on one shared model: each
// step runs one temporal transformer pass and one depformer pass with a
// batch row per conversation that has input this step. Every slot keeps its
// own token ring, KV cache (its own positions, pinning and roll-over),
// generator and step count, so its outputs are those it would produce
// alone: the same tokens greedy, the same draws sampled with the same seed
// (each slot's noise comes from its own generator, in its own order).
// Conversations join (prompts prefilled) and leave at any step; a freed slot
// is reused, reset, by the next join.
//
// The slots' temporal KV caches are the rows of one KVRows (each
// conversation works on a view of its row), so the temporal transformer runs
// one attention call per layer for every stepping slot: over the rows
// 0..(highest stepping slot), which joins keep mostly contiguous by taking
// the lowest free slot.
//
// A step's host work is small and fixed: the rows' token columns and ints
// staged and uploaded at once, their noise drawn, the whole model step
// (batch_step.h) run, the tokens copied back at once. On CUDA the model
// step is a CUDA graph per shape (GraphCache): rows, span and pinned slots
// rounded up (static_shape) so that few shapes occur.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "core/thread_stream.h"
#include "serving/batch_step.h"
#include "serving/graph_preparer.h"
#include "lm/conversation.h"
#include "core/graph_cache.h"
#include "lm/kv_rows.h"
#include "lm/prefill_rendezvous.h"
#include "lm/prompt.h"
#include "lm/prompt_cache.h"

namespace personaplex::serving {

using lm::Conversation;
using lm::ConversationOptions;
using lm::KVRows;
using lm::LmModel;
using lm::Prompt;
using lm::StepResult;
using lm::TokenRing;
using lm::WarningFn;

class BatchServer {
 public:
  // `options` apply to every slot (sampling, pinning, keep_logits,
  // cuda_graphs); the seed is given per join. Joins with a prompt run
  // before start where it left off (lm::PromptCache of `prompt_cache`
  // entries).
  BatchServer(std::shared_ptr<const LmModel> model, int64_t max_slots, ConversationOptions options = {},
              size_t prompt_cache = 4);

  BatchServer(const BatchServer &) = delete;
  BatchServer &operator=(const BatchServer &) = delete;
  ~BatchServer();

  // Takes a free slot, runs the prompt there; throws BusyError when all
  // slots are taken (or the prompt is bad: the slot stays free).
  int64_t join(const Prompt &prompt, uint64_t seed, const WarningFn &warn = {});

  // join() in three parts, so that the prompts need not hold up the other
  // conversations: reserve() takes the lowest free slot for a new
  // conversation (BusyError when none is left); prefill() runs the prompt in
  // it, and may run on another thread while step() is called, since steps
  // leave a reserved slot's cache alone (its idle row writes a slot that no
  // conversation uses); activate() makes it a member, release() gives it up.
  int64_t reserve(uint64_t seed);
  // prefill() returns true when the prompts came from the cache; with
  // `use_cache` false it runs them whatever the cache holds (a warm-up).
  // It returns once they have run on the device, queuing no wait on the
  // caller's stream (other threads' steps go on meanwhile).
  bool prefill(int64_t slot, const Prompt &prompt, const WarningFn &warn = {}, bool use_cache = true,
               bool *voice_cached = nullptr);
  void activate(int64_t slot);
  void release(int64_t slot);
  // The captures a reserved, prefilled slot's first steps need (the width
  // the batch takes with it, its span now and a few seconds on): asked for
  // under the caller's lock, run by capture_ahead() without it, on the
  // joining thread, so that the running calls never wait for a capture of
  // the join's making. Empty without CUDA graphs or before the first capture.
  struct Capture {
    std::array<int64_t, 4> key;
    BatchShape shape;
  };
  std::vector<Capture> join_captures(int64_t slot) const;
  // The shape of a live step of the members and `slot` (reserved or in
  // use): its first (ahead 0), or `ahead` steps on; and the shape the last
  // step took.
  BatchShape join_shape(int64_t slot, int64_t ahead = 0) const;
  const BatchShape &last_shape() const { return last_shape_; }
  // Captures what is not captured yet; safe while step() runs.
  void capture_ahead(const std::vector<Capture> &captures);
  // Waits (at most `timeout`) until the captures asked for ahead are done;
  // true when they are (or there are none to wait for).
  bool wait_prepared(std::chrono::milliseconds timeout);
  // Frees the slot; throws Error when it is not in use.
  void leave(int64_t slot);

  // One step of the given slots (each with its user's n_q - 8 codes), all at
  // once; the others do not move. Returns each given slot's result (nullopt
  // while its delays fill). Throws Error on an unused slot or bad codes
  // before anything runs.
  std::map<int64_t, std::optional<StepResult>> step(const std::map<int64_t, std::vector<int64_t>> &user);

  const lm::PromptCache &prompt_cache() const { return prompts_; }
  // How long a join's prompt chunk waits for other joins' chunks to run in
  // one pass with them (PERSONAPLEX_PREFILL_TOGETHER_MS, default 0: never),
  // and the rendezvous where they meet (null when never).
  static std::chrono::microseconds prefill_together();
  lm::PrefillRendezvous *rendezvous() const { return rendezvous_.get(); }
  int64_t max_slots() const { return int64_t(slots_.size()); }
  int64_t active() const { return max_slots() - int64_t(free_.size()); }
  bool in_use(int64_t slot) const;
  // The slot's conversation (steps(), ring(), logits...).
  Conversation &conversation(int64_t slot);

  // Whether steps replay CUDA graphs (false on CPU, when turned off, or
  // after a failed capture), and how many steps did.
  bool cuda_graphs_active() const { return graphs_.enabled(); }
  int64_t graph_steps() const { return graph_steps_; }
  // Steps with the graphs' rounded-up shapes even when eager (a test seam:
  // the results are the same). On by default where graphs are used.
  void use_static_shapes(bool on) { static_shapes_ = on; }

 private:
  // A slot stepping this step, in ascending slot order.
  struct Row {
    int64_t slot;
    Conversation *conv;
    TokenRing::Columns cols;
    int64_t dsteps;
  };
  // Stages a stepping row's inputs (and draws its noise) / an idle row's.
  void stage_row(const Row &r);
  void stage_idle(int64_t slot);
  void draw_noise_ahead(const std::vector<Row> &rows);
  // The step's shape; `ahead` steps later, with `more_rows` rows.
  BatchShape shape_of(const std::vector<Row> &rows, int64_t ahead = 0, int64_t more_rows = 0) const;
  // Asks for the captures of the shapes the next steps may take.
  void prepare_next(const std::vector<Row> &rows, const BatchShape &shape);
  void run_model_step(const BatchShape &shape);
  // Copies results back and advances the rows' conversations.
  void finish(const std::vector<Row> &rows, const BatchShape &shape,
              std::map<int64_t, std::optional<StepResult>> &results);

  std::shared_ptr<const LmModel> model_;
  ConversationOptions options_;
  KVRows kv_;  // row s: slot s's temporal KV cache
  BatchBuffers buffers_;
  GraphCache graphs_;
  SideWork noise_ahead_;  // the next step's noise, drawn while this one runs
  std::optional<bool> static_shapes_;
  int64_t graph_steps_ = 0;
  BatchShape last_shape_;
  // Joins' prompt chunks prefilled together (PERSONAPLEX_PREFILL_TOGETHER_MS;
  // null: each alone); before the slots, whose states point to it.
  std::unique_ptr<lm::PrefillRendezvous> rendezvous_;
  std::vector<std::unique_ptr<Conversation>> slots_;
  std::vector<bool> used_;
  std::vector<char> reserved_;  // bytes: prefill() reads its own while others change theirs
  std::set<int64_t> free_;  // the next join takes the lowest
  lm::PromptCache prompts_;
  std::unique_ptr<GraphPreparer> preparer_;  // with CUDA graphs; stops before the rest goes
};

}  // namespace personaplex::serving
