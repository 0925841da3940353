// A process-wide registry of immutable loaded objects (models), keyed by a
// string such as "weights|config|device|dtype": every user that names the
// same key gets the same std::shared_ptr<const T>, and the object is freed
// when its last user drops it (the cache only holds weak references).
//
// Loads of one key are serialized, so two users asking at once load once;
// loads of different keys run in parallel. A load that throws leaves nothing
// behind, and the next request tries again.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace personaplex {

template <typename T>
class SharedCache {
 public:
  using Loader = std::function<std::shared_ptr<const T>()>;

  // The live object under `key`, or the result of `load()` stored under it.
  std::shared_ptr<const T> get(const std::string &key, const Loader &load) {
    std::shared_ptr<Slot> slot = slot_for(key);
    std::lock_guard<std::mutex> loading(slot->mutex);
    if (std::shared_ptr<const T> live = slot->value.lock()) return live;
    std::shared_ptr<const T> fresh = load();
    slot->value = fresh;
    return fresh;
  }

  // The live object under `key`, or null; never loads.
  std::shared_ptr<const T> find(const std::string &key) {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = slots_.find(key);
      if (it == slots_.end()) return nullptr;
      slot = it->second;
    }
    std::lock_guard<std::mutex> loading(slot->mutex);
    return slot->value.lock();
  }

 private:
  struct Slot {
    std::mutex mutex;  // held while loading; guards `value`
    std::weak_ptr<const T> value;
  };

  std::shared_ptr<Slot> slot_for(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    prune_locked();
    std::shared_ptr<Slot> &slot = slots_[key];
    if (!slot) slot = std::make_shared<Slot>();
    return slot;
  }

  // Drops slots of freed objects that nobody is loading or waiting on.
  void prune_locked() {
    for (auto it = slots_.begin(); it != slots_.end();) {
      std::unique_lock<std::mutex> loading(it->second->mutex, std::try_to_lock);
      bool idle = loading.owns_lock() && it->second.use_count() == 1;
      if (idle && it->second->value.expired()) {
        loading.unlock();
        it = slots_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::mutex mutex_;  // guards `slots_`
  std::map<std::string, std::shared_ptr<Slot>> slots_;
};

// The one cache of objects of type T in this process.
template <typename T>
SharedCache<T> &shared_cache() {
  static SharedCache<T> cache;
  return cache;
}

}  // namespace personaplex
