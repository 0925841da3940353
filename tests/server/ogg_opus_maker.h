// Test streams: Ogg Opus written the ways real clients write it (any
// OpusHead input rate, mono or stereo, 2.5-120 ms packets, several packets
// per page or packets continued across pages), independently of the
// server's own Ogg code.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace oggmaker {

struct Options {
  int channels = 1;
  int encoder_rate = 48000;  // the rate of the samples given (one of Opus's)
  uint32_t head_rate = 48000;  // the OpusHead's informational input rate
  double packet_ms = 20;
  int packets_per_page = 1;
  int max_segments = 255;  // per page: smaller ones continue packets across pages
  int bitrate = 32000;
  uint32_t serial = 0x5eed;
  bool end_of_stream = true;  // the last page says so
};

// `pcm`: interleaved float samples at options.encoder_rate.
std::string ogg_opus(const std::vector<float> &pcm, const Options &options);

// One Ogg page holding `packet` alone, with the given flags (0x02 begins a stream).
std::string ogg_page(const std::string &packet, uint8_t flags, uint32_t serial, uint32_t sequence, int64_t granule);

// A sine of `hz` at `rate`, `seconds` long, `channels` equal channels.
std::vector<float> sine(double hz, int rate, double seconds, int channels = 1, float amplitude = 0.5f);

}  // namespace oggmaker
