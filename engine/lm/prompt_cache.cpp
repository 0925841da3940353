#include "lm/prompt_cache.h"

#include <algorithm>

#include "core/thread_stream.h"

namespace personaplex::lm {

struct PromptCache::Entry {
  // The key: everything the prompts' outcome depends on but the seed.
  const LmModel *model = nullptr;
  bool pin = false, greedy = false, prefill = false;
  int64_t silence_steps = 0;
  int64_t voice_frames = -1;  // of a voice phase's entry (-1: a whole prompt's)
  std::vector<int64_t> text;
  at::Tensor codes, embeddings, ring;  // CPU copies of the voice (undefined: none)
  // The outcome, once known.
  enum class Status { kRunning, kReady, kNotKept } status = Status::kRunning;
  std::shared_ptr<const PromptState> state;
  std::vector<std::string> warnings;
};

namespace {

// The voice as the key compares it: on the host (a copy only when not there).
at::Tensor on_host(const at::Tensor &t) { return t.defined() ? t.to(at::kCPU).contiguous() : t; }

// An entry's own copy of a key's tensor (the caller's may change later).
at::Tensor kept(const at::Tensor &t) { return t.defined() ? t.clone() : t; }

bool same_tensor(const at::Tensor &a, const at::Tensor &b) {
  if (a.defined() != b.defined()) return false;
  if (!a.defined()) return true;
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a, b);
}

bool same_key(const PromptCache::Entry &a, const PromptCache::Entry &b) {
  return a.model == b.model && a.pin == b.pin && a.greedy == b.greedy && a.prefill == b.prefill &&
         a.silence_steps == b.silence_steps && a.voice_frames == b.voice_frames && a.text == b.text &&
         same_tensor(a.codes, b.codes) &&
         same_tensor(a.embeddings, b.embeddings) && same_tensor(a.ring, b.ring);
}

}  // namespace

PromptCache::PromptCache(size_t entries) : capacity_(entries) {}

std::shared_ptr<PromptCache::Entry> PromptCache::find_or_claim(Shelf &shelf, const Entry &key, bool *claimed) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = std::find_if(shelf.entries.begin(), shelf.entries.end(),
                           [&](const std::shared_ptr<Entry> &e) { return same_key(*e, key); });
    if (it == shelf.entries.end()) {
      auto e = std::make_shared<Entry>(key);
      e->codes = kept(key.codes);
      e->embeddings = kept(key.embeddings);
      e->ring = kept(key.ring);
      shelf.entries.push_front(e);
      ++shelf.misses;
      *claimed = true;
      return e;
    }
    std::shared_ptr<Entry> e = *it;
    if (e->status == Entry::Status::kRunning) {  // another caller runs it: its result is ours
      settled_.wait(lock);
      continue;
    }
    shelf.entries.splice(shelf.entries.begin(), shelf.entries, it);
    if (e->status == Entry::Status::kReady) ++shelf.hits;
    *claimed = false;
    return e;
  }
}

void PromptCache::publish(Shelf &shelf, const std::shared_ptr<Entry> &e, std::unique_ptr<PromptState> state,
                          std::vector<std::string> warnings) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (state) {
      e->state = std::move(state);
      e->status = Entry::Status::kReady;
    } else {
      e->status = Entry::Status::kNotKept;  // sampled steps: every caller runs it
    }
    e->warnings = std::move(warnings);
    // Over capacity: the least recently used that nobody is running goes.
    while (shelf.entries.size() > capacity_) {
      auto victim = std::find_if(shelf.entries.rbegin(), shelf.entries.rend(), [](const std::shared_ptr<Entry> &x) {
        return x->status != Entry::Status::kRunning;
      });
      if (victim == shelf.entries.rend()) break;
      shelf.entries.erase(std::next(victim).base());
    }
  }
  settled_.notify_all();
}

void PromptCache::drop(Shelf &shelf, const std::shared_ptr<Entry> &e) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    shelf.entries.remove(e);
  }
  settled_.notify_all();
}

bool PromptCache::kept_run(Shelf &shelf, const Entry &key, Conversation &conv, const std::function<void()> &phase,
                           std::vector<std::string> *warnings, const WarningFn &warn) {
  bool claimed = false;
  std::shared_ptr<Entry> e = find_or_claim(shelf, key, &claimed);
  const at::Device device = conv.model().device();
  if (!claimed) {
    if (e->status != Entry::Status::kReady) {
      phase();
      return false;
    }
    conv.start_from(*e->state);
    // Done before the entry may go (its memory is then reused).
    synchronize_current_stream(device);
    if (warn)
      for (const std::string &w : e->warnings) warn(w);
    return true;
  }
  try {
    phase();
  } catch (...) {
    drop(shelf, e);
    throw;
  }
  std::optional<PromptState> state = conv.prompt_state();
  // Copied before other threads' streams read it.
  if (state) synchronize_current_stream(device);
  publish(shelf, e, state ? std::make_unique<PromptState>(std::move(*state)) : nullptr,
          warnings ? std::move(*warnings) : std::vector<std::string>{});
  return false;
}

bool PromptCache::voice_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan, const Entry &key) {
  if (plan.voice_frames == 0) return false;
  Entry voice = key;
  voice.text.clear();
  voice.silence_steps = 0;
  voice.voice_frames = plan.voice_frames;
  return kept_run(voices_, voice, conv, [&] { run_voice_phase(conv, prompt, plan); }, nullptr, {});
}

bool PromptCache::run(Conversation &conv, const Prompt &prompt, const WarningFn &warn, bool *voice_taken) {
  if (voice_taken) *voice_taken = false;
  if (capacity_ == 0 || conv.options().keep_logits) {
    run_prompts(conv, prompt, warn);
    return false;
  }
  Entry key;
  key.model = &conv.model();
  key.pin = conv.options().pin_prompt;
  key.greedy = conv.options().sampling.greedy;
  key.prefill = prompt.prefill;
  key.silence_steps = prompt.silence_steps;
  key.text = prompt.text_tokens;
  key.codes = on_host(prompt.voice.codes);
  key.embeddings = on_host(prompt.voice.stored.embeddings);
  key.ring = on_host(prompt.voice.stored.cache);
  std::vector<std::string> warnings;
  auto phases = [&] {
    const PromptPlan plan = plan_prompts(conv.model().config(), prompt);
    if (!plan.warning.empty()) {
      warnings.push_back(plan.warning);
      if (warn) warn(plan.warning);
    }
    const bool voice = voice_phase(conv, prompt, plan, key);
    if (voice_taken) *voice_taken = voice;
    run_role_phase(conv, prompt, plan);
  };
  return kept_run(prompts_, key, conv, phases, &warnings, warn);
}

size_t PromptCache::entries() const { return locked([&] { return prompts_.entries.size(); }); }
int64_t PromptCache::hits() const { return locked([&] { return prompts_.hits; }); }
int64_t PromptCache::misses() const { return locked([&] { return prompts_.misses; }); }
size_t PromptCache::voice_entries() const { return locked([&] { return voices_.entries.size(); }); }
int64_t PromptCache::voice_hits() const { return locked([&] { return voices_.hits; }); }
int64_t PromptCache::voice_misses() const { return locked([&] { return voices_.misses; }); }

}  // namespace personaplex::lm
