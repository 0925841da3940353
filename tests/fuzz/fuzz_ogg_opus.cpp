// Fuzz target: a client's Ogg Opus stream on /api/chat
// (pipelines/server/ogg_opus_input.cpp and its page reader), the bytes cut
// into websocket messages where the input says: the first byte gives the
// size of the first message (1-256), the rest of the stream follows in
// messages of that size, so pages split across messages are covered too.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ogg_opus_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = size_t(data[0]) + 1;
  ppserver::OggOpusInput input(24000);
  std::vector<float> pcm;
  for (size_t at = 1; at < size; at += piece) {
    const size_t n = at + piece <= size ? piece : size - at;
    if (!input.push(data + at, n, &pcm)) break;  // refused: error() names why
    // What a call keeps between messages is bounded: the server hands it on.
    pcm.clear();
  }
  return 0;
}
