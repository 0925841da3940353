// Joins consecutive Opus packets into one (the protocol sends one 80 ms
// packet per model frame; GStreamer's opusenc makes at most 60 ms).
#pragma once

#include <opus.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ppserver {

class OpusPacketJoiner {
 public:
  explicit OpusPacketJoiner(int packets_per_output);
  ~OpusPacketJoiner();
  OpusPacketJoiner(const OpusPacketJoiner &) = delete;
  OpusPacketJoiner &operator=(const OpusPacketJoiner &) = delete;

  // Takes one packet. Once `packets_per_output` are in, returns true with
  // `out` holding the joined packet (or the packets as they came, when the
  // encoder changed mode between them and they cannot be joined) and
  // `samples_48k` their duration.
  bool push(const uint8_t *data, size_t size, std::vector<std::string> *out, int64_t *samples_48k);

  // Gives what is pending as it came (at the end of the stream).
  bool flush(std::vector<std::string> *out, int64_t *samples_48k);

 private:
  int per_output_;
  std::vector<std::string> pending_;
  OpusRepacketizer *repacketizer_;
};

}  // namespace ppserver
