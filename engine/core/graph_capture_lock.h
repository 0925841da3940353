// One CUDA graph capture at a time per process. Captures are thread-local,
// but the allocator's capture bookkeeping is shared; each stream captures
// once, so serializing them costs nothing at steady state.
#pragma once

#include <mutex>

namespace personaplex {

inline std::mutex &graph_capture_lock() {
  static std::mutex lock;
  return lock;
}

}  // namespace personaplex
