// Sessions of one process stepping together: a BatchServer shared by every
// Session that asks for the same model, slot count and step options, so N
// conversations cost one batched model step per frame instead of N.
//
// Each session runs on its own thread (an element's streaming task) and
// calls step() once per frame; the call blocks until a batched step that
// includes it has run. A step runs on the batch's own thread as soon as every
// joined session has submitted its frame, or `gather` after the first
// submission (a session that is paused or late must not stall the others:
// it joins a later step). Sessions paced by one clock submit within a
// fraction of a millisecond of each other when their frame grids share a
// phase (see phase()); sessions paced by their input (a server's calls)
// submit at phases of their own, and on a GPU the batch steps them on one
// grid of frames instead (step_grid.h; PERSONAPLEX_STEP_GRID=0: not).
//
// With a codec (a Mimi), sessions may submit audio instead of codes
// (step_frame): the step then encodes every submitted frame in one batched
// Mimi call, steps the LM, and decodes every answer in another
// (mimi_batch.h), so N conversations cost one codec call each way per frame.
//
// Leaves run on the caller's thread; a join's prompts are prefilled beside
// the running steps (BatchServer::prefill), not between them, on the batch's
// prefill workers (threads that stay warm, prefill_workers.h), the caller
// waiting. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mimi/mimi.h"
#include "serving/batch.h"
#include "serving/mimi_batch.h"
#include "serving/prefill_workers.h"
#include "serving/step_gate.h"
#include "serving/step_grid.h"
#include "serving/step_log.h"
#include "lm/conversation.h"
#include "lm/prompt.h"

namespace personaplex::serving {

class LockstepBatch {
 public:
  // The batch of these step options on `lm` (and codec `mimi`, null for
  // none) with `slots` slots: shared with every other caller that names the
  // same ones while any holds it. Its KV storage and codec state for all
  // slots are allocated here, once.
  static std::shared_ptr<LockstepBatch> acquire(const std::shared_ptr<const lm::LmModel> &lm,
                                                const std::shared_ptr<const mimi::Mimi> &mimi, int64_t slots,
                                                const lm::ConversationOptions &options);

  LockstepBatch(std::shared_ptr<const lm::LmModel> lm, std::shared_ptr<const mimi::Mimi> mimi, int64_t slots,
                lm::ConversationOptions options, std::chrono::microseconds gather = std::chrono::milliseconds(10));
  ~LockstepBatch();
  LockstepBatch(const LockstepBatch &) = delete;
  LockstepBatch &operator=(const LockstepBatch &) = delete;

  // Where a join's time went, in milliseconds (what a call's handshake
  // waits on when many start at once).
  struct JoinTimes {
    double queued_ms = 0;    // waiting for a free prefill worker
    double prompts_ms = 0;   // the prompts (or the wait for the same ones in the cache)
    double capture_ms = 0;   // the graphs of the join's first steps
    double activate_ms = 0;  // waiting for the running step to end
  };
  struct Joined {
    int64_t slot = -1;
    int64_t prompt_steps = 0;     // LM steps the prompts took
    bool prompts_cached = false;  // started where an earlier join's same prompts left off
    bool voice_cached = false;    // or ran its role where an earlier one's same voice left off
    JoinTimes times;
  };
  // Takes a free slot and runs the prompt there (the slot's codec streams
  // start afresh). Throws BusyError when every slot is taken (the message
  // says how many), Error on a bad prompt.
  Joined join(const lm::Prompt &prompt, uint64_t seed, const lm::WarningFn &warn = {});
  // Frees the slot (waits for a step that includes it to end). No-op for a
  // slot that is not in use.
  void leave(int64_t slot);
  // One frame of the slot's conversation (its user's codes); blocks until
  // the batched step that took it has run. Throws Error on bad codes or a
  // failed step (then every session of that step gets the error).
  std::optional<lm::StepResult> step(int64_t slot, std::vector<int64_t> user_codes);

  struct Frame {
    std::optional<lm::StepResult> result;  // nullopt while the delays fill
    std::vector<float> pcm;                // the agent's frame (silence while they fill)
  };
  // One frame of the slot's user audio (n <= frame_size samples, the rest
  // silence) through the codec and the LM; blocks like step(). Needs a codec.
  Frame step_frame(int64_t slot, const float *pcm, size_t n);

  // Runs `warm_up` (frames of a throw-away conversation: kernels loaded,
  // first graphs captured) unless the batch has stepped or been warmed up;
  // callers that come meanwhile wait for it, so that sessions starting
  // together warm the batch up once, not once each.
  void warm_up_once(const std::function<void()> &warm_up);
  // Runs `prompt` once on every prefill worker (a warm-up: their first
  // prompts cost many times their later ones); the first run seeds the
  // prompt cache. On a GPU the workers then share out roles of every warmed
  // length (prompt_lengths.h; PERSONAPLEX_WARM_PROMPT_LENGTHS=0: not).
  void warm_prefill(const lm::Prompt &prompt, uint64_t seed);
  // After a warm-up: waits (at most `timeout`) for the graphs its steps
  // asked for ahead (every batch width at its span), so that no call pays
  // for their capture; true when they are done.
  bool wait_prepared(std::chrono::milliseconds timeout);

  // Whether a join's prompts give way to the steps on `device` (a GPU,
  // unless PERSONAPLEX_PREFILL_GIVES_WAY=0), and whether the steps run on
  // high-priority streams (PERSONAPLEX_STEP_PRIORITY=high).
  static bool prompts_give_way(const at::Device &device);
  // How long they may run beside a step first (PERSONAPLEX_PREFILL_BESIDE_MS,
  // default 10).
  static std::chrono::microseconds prompts_beside_step();
  // Joins whose prompts run at once (PERSONAPLEX_PREFILL_WORKERS, 1-8,
  // default 2, or 8 with BatchServer::prefill_together(); no more than the
  // slots).
  static int64_t prefill_workers();
  static bool steps_first();
  // Whether the steps run on one grid of frames (step_grid.h): on a GPU
  // unless PERSONAPLEX_STEP_GRID=0 (PERSONAPLEX_STEP_GRID=1: anywhere), and
  // not once a session paced by a clock has asked for the batch's phase().
  static bool steps_on_grid(const at::Device &device);
  // Whether warm_prefill() runs the role lengths (a GPU, unless
  // PERSONAPLEX_WARM_PROMPT_LENGTHS=0).
  static bool warms_prompt_lengths(const at::Device &device);

  int64_t slots() const { return slots_; }
  int64_t active() const;
  // The joins' prompts kept (thread-safe).
  const lm::PromptCache &prompt_cache() const { return server_.prompt_cache(); }
  // Where joins' prompt chunks meet to share passes (null: each alone;
  // BatchServer::prefill_together).
  const lm::PrefillRendezvous *prefill_rendezvous() const { return server_.rendezvous(); }
  // Steps run so far and the largest number of rows one of them had.
  int64_t steps() const;
  int64_t widest_step() const;
  // A shared reference point for frame grids, in nanoseconds of any clock
  // its users agree on: the first caller's `now`. Sessions that start their
  // grids on it (plus whole frames) submit together.
  int64_t phase(int64_t now);

 private:
  struct Pending {
    std::vector<int64_t> codes;
    std::vector<float> pcm;  // audio to encode, when given instead of codes
    std::vector<float> out_pcm;
    std::optional<lm::StepResult> result;
    std::string error;
    bool done = false;
  };
  void run();
  void give_way_to_steps();
  // Runs `prompt` in a slot reserved for it, then frees the slot.
  void prefill_in_scratch_slot(const lm::Prompt &prompt, uint64_t seed, bool use_cache);
  // Fills j's prompts_cached, voice_cached and times.
  void prefill_and_capture(const lm::Prompt &prompt, const lm::WarningFn &warn, Joined &j);
  bool ready_locked(std::chrono::steady_clock::time_point deadline) const;
  std::chrono::steady_clock::time_point deadline_locked(std::chrono::steady_clock::time_point first);
  static std::chrono::nanoseconds frame_period(const std::shared_ptr<const mimi::Mimi> &mimi);
  void step_pending(std::map<int64_t, std::shared_ptr<Pending>> &taken);
  void step_taken(std::map<int64_t, std::shared_ptr<Pending>> &taken);
  std::shared_ptr<Pending> submit(int64_t slot, std::shared_ptr<Pending> p);

  const int64_t slots_;
  const std::chrono::microseconds gather_;
  const lm::LmConfig config_;
  const at::Device device_;
  // The choices above, read once (not at every step or layer).
  const bool steps_first_, prompts_give_way_;
  const std::chrono::microseconds prompts_beside_;
  StepGrid grid_;  // the batch thread's
  mutable std::mutex mutex_;  // guards what follows but the server
  std::condition_variable wake_;  // the batch thread: submissions, stop
  std::condition_variable done_;  // the sessions: their step ran
  std::map<int64_t, std::shared_ptr<Pending>> pending_;
  std::optional<std::chrono::steady_clock::time_point> first_pending_;
  std::vector<bool> member_;  // slots joined
  int64_t joined_ = 0;
  int64_t steps_ = 0, widest_ = 0;
  std::optional<int64_t> phase_;
  bool stop_ = false;
  std::mutex warm_mutex_;  // held across a warm-up
  bool warmed_ = false;
  StepGate gate_;             // joins' prompts give way to the steps
  StepLog log_;               // the batch thread's (PERSONAPLEX_STALL_LOG=1)
  std::mutex server_mutex_;  // held across a step, a join, a leave
  BatchServer server_;
  std::unique_ptr<MimiBatch> codec_;  // null without a codec
  PrefillWorkers prefill_;
  std::thread thread_;
};

}  // namespace personaplex::serving
