#include "lm/prompt_cache.h"

#include <algorithm>

#include "core/thread_stream.h"

namespace personaplex::lm {

struct PromptCache::Entry {
  // The key: everything the prompts' outcome depends on but the seed.
  const LmModel *model = nullptr;
  bool pin = false, greedy = false, prefill = false;
  int64_t silence_steps = 0;
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
         a.silence_steps == b.silence_steps && a.text == b.text && same_tensor(a.codes, b.codes) &&
         same_tensor(a.embeddings, b.embeddings) && same_tensor(a.ring, b.ring);
}

}  // namespace

PromptCache::PromptCache(size_t entries) : capacity_(entries) {}

std::shared_ptr<PromptCache::Entry> PromptCache::find_or_claim(const Entry &key, bool *claimed) {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const std::shared_ptr<Entry> &e) { return same_key(*e, key); });
    if (it == entries_.end()) {
      auto e = std::make_shared<Entry>(key);
      e->codes = kept(key.codes);
      e->embeddings = kept(key.embeddings);
      e->ring = kept(key.ring);
      entries_.push_front(e);
      ++misses_;
      *claimed = true;
      return e;
    }
    std::shared_ptr<Entry> e = *it;
    if (e->status == Entry::Status::kRunning) {  // another caller runs it: its result is ours
      settled_.wait(lock);
      continue;
    }
    entries_.splice(entries_.begin(), entries_, it);
    if (e->status == Entry::Status::kReady) ++hits_;
    *claimed = false;
    return e;
  }
}

void PromptCache::publish(const std::shared_ptr<Entry> &e, std::unique_ptr<PromptState> state,
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
    while (entries_.size() > capacity_) {
      auto victim = std::find_if(entries_.rbegin(), entries_.rend(), [](const std::shared_ptr<Entry> &x) {
        return x->status != Entry::Status::kRunning;
      });
      if (victim == entries_.rend()) break;
      entries_.erase(std::next(victim).base());
    }
  }
  settled_.notify_all();
}

bool PromptCache::run(Conversation &conv, const Prompt &prompt, const WarningFn &warn) {
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
  bool claimed = false;
  std::shared_ptr<Entry> e = find_or_claim(key, &claimed);
  const at::Device device = conv.model().device();
  if (!claimed) {
    if (e->status != Entry::Status::kReady) {
      run_prompts(conv, prompt, warn);
      return false;
    }
    conv.start_from(*e->state);
    // Done before the entry may go (its memory is then reused).
    synchronize_current_stream(device);
    if (warn)
      for (const std::string &w : e->warnings) warn(w);
    return true;
  }
  std::vector<std::string> warnings;
  try {
    run_prompts(conv, prompt, [&](const std::string &w) {
      warnings.push_back(w);
      if (warn) warn(w);
    });
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      entries_.remove(e);
    }
    settled_.notify_all();
    throw;
  }
  std::optional<PromptState> state = conv.prompt_state();
  // Copied before other threads' streams read it.
  if (state) synchronize_current_stream(device);
  publish(e, state ? std::make_unique<PromptState>(std::move(*state)) : nullptr, std::move(warnings));
  return false;
}

size_t PromptCache::entries() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

int64_t PromptCache::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}

int64_t PromptCache::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}

}  // namespace personaplex::lm
