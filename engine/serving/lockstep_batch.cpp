#include "serving/lockstep_batch.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>

#include "core/env_choice.h"
#include "core/error.h"
#include "core/thread_stream.h"
#include "core/yield_point.h"
#include "serving/prompt_lengths.h"

namespace personaplex::serving {

using namespace lm;  // the model this layer serves
namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}


// Batches are keyed by the model object and everything every slot shares.
std::string key_of(const lm::LmModel *lm, const mimi::Mimi *mimi, int64_t slots, const lm::ConversationOptions &o) {
  std::ostringstream k;
  const lm::SamplingParams &s = o.sampling;
  k << static_cast<const void *>(lm) << '|' << static_cast<const void *>(mimi) << '|' << slots << '|' << s.greedy << '|' << s.temp_text << '|'
    << s.top_k_text << '|' << s.temp_audio << '|' << s.top_k_audio << '|' << o.pin_prompt << '|'
    << o.full_depformer << '|' << o.cuda_graphs;
  return k.str();
}

std::mutex registry_mutex;
std::map<std::string, std::weak_ptr<LockstepBatch>> &registry() {
  static std::map<std::string, std::weak_ptr<LockstepBatch>> batches;
  return batches;
}

}  // namespace

std::shared_ptr<LockstepBatch> LockstepBatch::acquire(const std::shared_ptr<const lm::LmModel> &lm,
                                                      const std::shared_ptr<const mimi::Mimi> &mimi, int64_t slots,
                                                      const lm::ConversationOptions &options) {
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto &batches = registry();
  for (auto it = batches.begin(); it != batches.end();)
    it = it->second.expired() ? batches.erase(it) : std::next(it);
  std::weak_ptr<LockstepBatch> &entry = batches[key_of(lm.get(), mimi.get(), slots, options)];
  if (auto live = entry.lock()) return live;
  auto fresh = std::make_shared<LockstepBatch>(lm, mimi, slots, options);
  entry = fresh;
  return fresh;
}

LockstepBatch::LockstepBatch(std::shared_ptr<const lm::LmModel> lm, std::shared_ptr<const mimi::Mimi> mimi,
                             int64_t slots, lm::ConversationOptions options, std::chrono::microseconds gather)
    : slots_(slots),
      gather_(gather),
      config_(lm->config()),
      device_(lm->device()),
      steps_first_(steps_first()),
      prompts_give_way_(prompts_give_way(device_)),
      prompts_beside_(prompts_beside_step()),
      grid_(steps_on_grid(device_) ? frame_period(mimi) : std::chrono::nanoseconds(0), gather),
      member_(size_t(std::max<int64_t>(slots, 0)), false),
      server_(std::move(lm), slots, options),
      prefill_(std::clamp<int64_t>(slots, 1, prefill_workers())) {
  if (mimi) codec_ = std::make_unique<MimiBatch>(std::move(mimi), slots);
  thread_ = std::thread([this] {
    if (steps_first_) prefer_high_priority_streams();
    run();
  });
}

LockstepBatch::~LockstepBatch() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

LockstepBatch::Joined LockstepBatch::join(const lm::Prompt &prompt, uint64_t seed, const lm::WarningFn &warn) {
  at::NoGradGuard no_grad;
  Joined j;
  {
    std::lock_guard<std::mutex> server(server_mutex_);
    j.slot = server_.reserve(seed);
  }
  // The prompts run beside the steps of the others, not between them.
  const auto queued = std::chrono::steady_clock::now();
  try {
    prefill_.run([&] {
      j.times.queued_ms = ms_since(queued);
      prefill_and_capture(prompt, warn, j);
    });
  } catch (...) {
    std::lock_guard<std::mutex> server(server_mutex_);
    server_.release(j.slot);
    throw;
  }
  const auto activating = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> server(server_mutex_);
    j.times.activate_ms = ms_since(activating);
    server_.activate(j.slot);
    j.prompt_steps = server_.conversation(j.slot).steps();

    if (codec_) codec_->restart(j.slot);
  }
  log_.join(j.slot, j.times.prompts_ms, j.times.capture_ms);
  std::lock_guard<std::mutex> lock(mutex_);
  member_[size_t(j.slot)] = true;
  ++joined_;
  return j;
}

// On a prefill worker: the prompts, then the graphs of the join's first
// steps (a join's new width or span costs the joiner, not a step of
// everyone).
void LockstepBatch::prefill_and_capture(const lm::Prompt &prompt, const lm::WarningFn &warn, Joined &j) {
  at::NoGradGuard no_grad;
  auto t = std::chrono::steady_clock::now();
  {
    YieldTo yield([this] { give_way_to_steps(); });
    j.prompts_cached = server_.prefill(j.slot, prompt, warn, true, &j.voice_cached);
  }
  j.times.prompts_ms = ms_since(t);
  t = std::chrono::steady_clock::now();
  std::vector<BatchServer::Capture> captures;
  {
    std::lock_guard<std::mutex> server(server_mutex_);
    captures = server_.join_captures(j.slot);
  }
  server_.capture_ahead(captures);
  j.times.capture_ms = ms_since(t);
}

// PERSONAPLEX_STEP_PRIORITY=high: the steps run on streams of the highest
// priority, so that the GPU starts their blocks before those of joins'
// prompts running beside them (measured against the prompts giving way).
bool LockstepBatch::steps_first() { return env_choice_is("PERSONAPLEX_STEP_PRIORITY", "high"); }

// On a GPU, running both at once, a join's large kernels would hold up each
// of a step's many small ones, and every call's next frame with them (with
// the gate, join-bench holds 64 calls, 32 of them joining, at 90 ms gaps
// on an H100; without it not yet measured apart from the server's main-loop
// stalls that were mistaken for it). On a CPU giving way only slows the
// joiner (the cores are shared either way).
// PERSONAPLEX_PREFILL_GIVES_WAY=0: beside the steps (to measure the two).
bool LockstepBatch::prompts_give_way(const at::Device &device) {
  return device.is_cuda() && !env_choice_is("PERSONAPLEX_PREFILL_GIVES_WAY", "0");
}

// The warm-up runs roles of every chunk length (prompt_lengths.h), so that
// CUDA's lazy loading of a kernel never waits on the device while calls talk
// (a join's prompts took 1.2 s instead of 0.06 on an H100): on a GPU only (a
// CPU loads nothing), unless PERSONAPLEX_WARM_PROMPT_LENGTHS=0.
bool LockstepBatch::warms_prompt_lengths(const at::Device &device) {
  return device.is_cuda() && !env_choice_is("PERSONAPLEX_WARM_PROMPT_LENGTHS", "0");
}

// Between two layers of a join's prompts (on a prefill worker's own
// stream): the last layer run on the device, then, once the step under way
// has run beside them for the allowance, that step ended: the prompts run
// between steps and for at most the allowance and a layer beside one.
void LockstepBatch::give_way_to_steps() {
  if (!prompts_give_way_) return;
  synchronize_current_stream(device_);
  gate_.give_way(prompts_beside_);
}

// Joins whose prompts run at once (different prompts: the same ones wait for
// the first run in the prompt cache): PERSONAPLEX_PREFILL_WORKERS, 1-8,
// default 2 (four took 64 joins at once from 2.7 to 2.3 s on an H100), 8
// when joins' prompts share passes (they meet only when they run at once).
int64_t LockstepBatch::prefill_workers() {
  const std::optional<double> n = env_number("PERSONAPLEX_PREFILL_WORKERS");
  if (n && *n >= 1 && *n <= 8 && *n == std::floor(*n)) return int64_t(*n);
  return BatchServer::prefill_together().count() > 0 ? 8 : 2;
}

// PERSONAPLEX_PREFILL_BESIDE_MS: how long a join's prompts may run beside a
// step before they wait for its end (default 10 ms: on an H100 a step of 64
// calls takes ~28 ms of each 80 ms frame, a prompt layer ~0.8 ms).
std::chrono::microseconds LockstepBatch::prompts_beside_step() {
  const std::optional<double> ms = env_number("PERSONAPLEX_PREFILL_BESIDE_MS");
  if (!ms || !(*ms >= 0) || *ms > 1000) return std::chrono::milliseconds(10);
  return std::chrono::microseconds(int64_t(*ms * 1000));
}

void LockstepBatch::warm_prefill(const lm::Prompt &prompt, uint64_t seed) {
  const std::vector<lm::Prompt> lengths =
      warms_prompt_lengths(device_) ? role_length_prompts(prompt, config_) : std::vector<lm::Prompt>{};
  prefill_.run_on_each([&](int64_t worker) {
    at::NoGradGuard no_grad;
    // The session's prompts first (worker 0's seed the prompt cache), then
    // this worker's share of the role lengths, past the cache.
    prefill_in_scratch_slot(prompt, seed, worker == 0);
    for (size_t i = size_t(worker); i < lengths.size(); i += size_t(prefill_.threads()))
      prefill_in_scratch_slot(lengths[i], seed, false);
  });
}

void LockstepBatch::prefill_in_scratch_slot(const lm::Prompt &prompt, uint64_t seed, bool use_cache) {
  int64_t slot;
  {
    std::lock_guard<std::mutex> server(server_mutex_);
    slot = server_.reserve(seed);
  }
  try {
    server_.prefill(slot, prompt, {}, use_cache);
  } catch (...) {
    std::lock_guard<std::mutex> server(server_mutex_);
    server_.release(slot);
    throw;
  }
  std::lock_guard<std::mutex> server(server_mutex_);
  server_.release(slot);
}

void LockstepBatch::leave(int64_t slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slot < 0 || slot >= slots_ || !member_[size_t(slot)]) return;
    member_[size_t(slot)] = false;
    --joined_;
    auto it = pending_.find(slot);
    if (it != pending_.end()) {  // its owner is gone: nobody waits for it
      it->second->error = "the conversation left the batch";
      it->second->done = true;
      pending_.erase(it);
    }
  }
  done_.notify_all();
  wake_.notify_all();  // the others may now be all there is
  std::lock_guard<std::mutex> server(server_mutex_);
  server_.leave(slot);
}

std::optional<lm::StepResult> LockstepBatch::step(int64_t slot, std::vector<int64_t> user_codes) {
  lm::check_user_codes(config_, user_codes);  // bad codes fail this session alone
  auto p = std::make_shared<Pending>();
  p->codes = std::move(user_codes);
  return std::move(submit(slot, p)->result);
}

LockstepBatch::Frame LockstepBatch::step_frame(int64_t slot, const float *pcm, size_t n) {
  if (!codec_) throw Error("this batch has no codec: submit codes");
  const size_t F = size_t(codec_->mimi().frame_size());
  if (n > F) throw Error("a frame holds at most " + std::to_string(F) + " samples, " + std::to_string(n) + " given");
  auto p = std::make_shared<Pending>();
  p->pcm.assign(F, 0.0f);
  std::copy(pcm, pcm + n, p->pcm.begin());
  submit(slot, p);
  Frame f;
  f.result = std::move(p->result);
  f.pcm = f.result ? std::move(p->out_pcm) : std::vector<float>(F, 0.0f);
  return f;
}

// Queues the slot's submission and waits for the step that takes it.
std::shared_ptr<LockstepBatch::Pending> LockstepBatch::submit(int64_t slot, std::shared_ptr<Pending> p) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (slot < 0 || slot >= slots_ || !member_[size_t(slot)])
    throw Error("batch slot " + std::to_string(slot) + " is not joined");
  if (pending_.count(slot)) throw Error("batch slot " + std::to_string(slot) + " already has a step waiting");
  if (pending_.empty()) first_pending_ = std::chrono::steady_clock::now();
  pending_[slot] = p;
  wake_.notify_all();
  done_.wait(lock, [&] { return p->done; });
  if (!p->error.empty()) throw Error(p->error);
  return p;
}

bool LockstepBatch::ready_locked(std::chrono::steady_clock::time_point deadline) const {
  return stop_ || int64_t(pending_.size()) >= joined_ || std::chrono::steady_clock::now() >= deadline;
}

// On a GPU unless PERSONAPLEX_STEP_GRID=0; PERSONAPLEX_STEP_GRID=1 anywhere.
bool LockstepBatch::steps_on_grid(const at::Device &device) {
  if (env_choice_is("PERSONAPLEX_STEP_GRID", "0")) return false;
  return device.is_cuda() || env_choice_is("PERSONAPLEX_STEP_GRID", "1");
}

// Sessions paced by a clock share the batch's phase (phase()) and submit
// together on their own grid: the step grid, anchored elsewhere, would hold
// their frames back up to a period, past their deadlines.
std::chrono::steady_clock::time_point LockstepBatch::deadline_locked(std::chrono::steady_clock::time_point first) {
  return phase_ ? first + gather_ : grid_.deadline(first);
}

// The codec's frame (the LM steps once a frame), or the released Mimi's.
std::chrono::nanoseconds LockstepBatch::frame_period(const std::shared_ptr<const mimi::Mimi> &mimi) {
  const double rate = mimi ? mimi->config().frame_rate : mimi::MimiConfig().frame_rate;
  return std::chrono::nanoseconds(int64_t(1e9 / rate));
}

// The batch thread: waits for a first submission, gathers the others for
// at most `gather` (on the step grid: until the next grid line), steps what
// it has.
void LockstepBatch::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stop_ || !pending_.empty(); });
    if (stop_) break;
    const auto deadline = deadline_locked(*first_pending_);
    wake_.wait_until(lock, deadline, [&] { return ready_locked(deadline); });
    if (stop_) break;
    if (pending_.empty()) continue;  // the only one left
    const auto first = *first_pending_;
    std::map<int64_t, std::shared_ptr<Pending>> taken;
    taken.swap(pending_);
    first_pending_.reset();
    lock.unlock();
    const auto began = std::chrono::steady_clock::now();
    gate_.begin_step();
    step_pending(taken);
    gate_.end_step();
    log_.step(first, began, std::chrono::steady_clock::now(), taken.size());
    lock.lock();
    ++steps_;
    widest_ = std::max(widest_, int64_t(taken.size()));
    for (auto &t : taken) t.second->done = true;
    done_.notify_all();
  }
  // Stopping: nobody may stay blocked.
  gate_.stop();
  for (auto &p : pending_) {
    p.second->error = "the batch stopped";
    p.second->done = true;
  }
  pending_.clear();
  done_.notify_all();
}

void LockstepBatch::step_pending(std::map<int64_t, std::shared_ptr<Pending>> &taken) {
  at::NoGradGuard no_grad;
  try {
    std::lock_guard<std::mutex> server(server_mutex_);
    // A slot may have left between its submission and now.
    std::map<int64_t, std::shared_ptr<Pending>> live;
    for (auto &t : taken) {
      if (server_.in_use(t.first))
        live.insert(t);
      else
        t.second->error = "the conversation left the batch";
    }
    // On the thread's high-priority stream, ordered with the shared default
    // stream as if run there.
    if (steps_first_)
      on_thread_stream(device_, [&] { step_taken(live); });
    else
      step_taken(live);
  } catch (const std::exception &e) {
    for (auto &t : taken) t.second->error = e.what();
  }
}

// Under the server lock: the audio submitted encoded in one codec call, one
// LM step, the answers to audio decoded in one codec call.
void LockstepBatch::step_taken(std::map<int64_t, std::shared_ptr<Pending>> &taken) {
  std::map<int64_t, std::vector<int64_t>> user;
  std::map<int64_t, std::vector<float>> audio;
  for (auto &[slot, p] : taken) {
    if (p->pcm.empty())
      user[slot] = p->codes;
    else
      audio[slot] = std::move(p->pcm);
  }
  if (!audio.empty())
    for (auto &[slot, codes] : codec_->encode(audio)) user[slot] = std::move(codes);
  auto results = server_.step(user);
  std::map<int64_t, std::vector<int64_t>> answers;
  for (auto &[slot, r] : results) {
    if (r && audio.count(slot)) answers[slot] = r->agent();
    taken[slot]->result = std::move(r);
  }
  for (auto &[slot, pcm] : codec_ && !answers.empty() ? codec_->decode(answers)
                                                       : std::map<int64_t, std::vector<float>>{})
    taken[slot]->out_pcm = std::move(pcm);
}

void LockstepBatch::warm_up_once(const std::function<void()> &warm_up) {
  std::lock_guard<std::mutex> warming(warm_mutex_);
  if (warmed_ || steps() > 0) return;
  warm_up();
  warmed_ = true;
}

bool LockstepBatch::wait_prepared(std::chrono::milliseconds timeout) {
  // Not under the server lock: the captures take it never, the steps do.
  return server_.wait_prepared(timeout);
}

int64_t LockstepBatch::active() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return joined_;
}

int64_t LockstepBatch::steps() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return steps_;
}

int64_t LockstepBatch::widest_step() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return widest_;
}

int64_t LockstepBatch::phase(int64_t now) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!phase_) phase_ = now;
  return *phase_;
}

}  // namespace personaplex::serving
