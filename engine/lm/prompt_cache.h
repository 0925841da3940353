// Prompts run once per distinct prompt, not once per conversation: a
// service's calls mostly share a voice and a role, and their prompts cost a
// prefill of a few hundred steps each (64 calls joining at once queue up for
// seconds). The first conversation with a prompt runs it and keeps where it
// left off (a PromptState: KV entries, ring, position); later ones with the
// same prompt, model and options start there, with their own seeds. Exact:
// a prompt whose steps sample anything is never kept.
//
// Calls with a role of their own mostly share a voice: the voice phase's
// outcome is kept apart (as many voices as prompts), so such a call runs
// only its role.
//
// Conversations asking for a prompt that another is running wait for it
// instead of running it too. Entries are compared whole (tokens, voice
// tensors), never by a hash alone, so one caller's prompt cannot be served to
// another. The least recently used entry goes first. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lm/conversation.h"
#include "lm/prompt.h"

namespace personaplex::lm {

class PromptCache {
 public:
  // Keeps at most `entries` prompts (0: keeps none, runs every prompt).
  explicit PromptCache(size_t entries = 8);
  PromptCache(const PromptCache &) = delete;
  PromptCache &operator=(const PromptCache &) = delete;

  // run_prompts(conv, prompt, warn) on an empty conversation, or the state an
  // earlier run of the same prompt (same model, pinning and sampling mode)
  // left, with the warnings that run gave. Returns true when taken from the
  // cache; `voice_taken` (when given) says whether only the voice phase was.
  bool run(Conversation &conv, const Prompt &prompt, const WarningFn &warn = {}, bool *voice_taken = nullptr);

  // Whole prompts kept, and the runs that started from one or ran it.
  size_t entries() const;
  int64_t hits() const;
  int64_t misses() const;
  // The same for voice phases (runs of a prompt not kept whole).
  size_t voice_entries() const;
  int64_t voice_hits() const;
  int64_t voice_misses() const;

  struct Entry;  // a prompt's key and outcome (prompt_cache.cpp)
  // Entries of one kind, most recently used first, and their counts.
  struct Shelf {
    std::list<std::shared_ptr<Entry>> entries;
    int64_t hits = 0, misses = 0;
  };

 private:
  template <class F>
  auto locked(F read) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return read();
  }
  std::shared_ptr<Entry> find_or_claim(Shelf &shelf, const Entry &key, bool *claimed);
  void publish(Shelf &shelf, const std::shared_ptr<Entry> &e, std::unique_ptr<PromptState> state,
               std::vector<std::string> warnings);
  void drop(Shelf &shelf, const std::shared_ptr<Entry> &e);
  // Runs `phase` on `conv` for the entry of `key` on `shelf`, or starts
  // `conv` where an earlier run left it. True when started from the shelf.
  bool kept_run(Shelf &shelf, const Entry &key, Conversation &conv, const std::function<void()> &phase,
                std::vector<std::string> *warnings, const WarningFn &warn);
  bool voice_phase(Conversation &conv, const Prompt &prompt, const PromptPlan &plan, const Entry &key);

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable settled_;  // an entry was published or dropped
  Shelf prompts_, voices_;
};

}  // namespace personaplex::lm
