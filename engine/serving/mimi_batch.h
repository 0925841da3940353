// The codec side of a lock-step batch: one rows-mode Mimi state with a row
// per slot (mimi/state.h), so that a step's input frames are encoded in one
// batched call and its answers decoded in another, instead of one Mimi call
// per conversation. Each slot's row restarts when a conversation joins it;
// rows without a frame this step are left as they are. Not thread-safe: the
// batch calls it between steps and from its step.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "mimi/mimi.h"

namespace personaplex::mimi {
struct MimiState;
}

namespace personaplex::serving {

class MimiBatch {
 public:
  MimiBatch(std::shared_ptr<const mimi::Mimi> mimi, int64_t slots);
  ~MimiBatch();

  const mimi::Mimi &mimi() const { return *mimi_; }
  // The slot's streams start afresh (a new conversation in it).
  void restart(int64_t slot);
  // One frame of user audio per slot (frame_size samples each) -> the
  // frame's codes per slot (num_codebooks each).
  std::map<int64_t, std::vector<int64_t>> encode(const std::map<int64_t, std::vector<float>> &pcm);
  // One frame of codes per slot -> frame_size samples per slot.
  std::map<int64_t, std::vector<float>> decode(const std::map<int64_t, std::vector<int64_t>> &codes);

 private:
  void set_active(const std::vector<int64_t> &slots);

  std::shared_ptr<const mimi::Mimi> mimi_;
  int64_t slots_;
  std::unique_ptr<mimi::MimiState> state_;
};

}  // namespace personaplex::serving
