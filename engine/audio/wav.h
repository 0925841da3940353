// WAV files: reads 8/16/24/32-bit integer PCM and 32/64-bit float (also
// WAVE_FORMAT_EXTENSIBLE), writes 32-bit float or 16-bit PCM.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace personaplex::audio {

struct Wav {
  int64_t sample_rate = 0;
  int64_t channels = 0;
  std::vector<float> samples;  // interleaved, in [-1, 1] for integer formats
  int64_t frames() const { return channels ? int64_t(samples.size()) / channels : 0; }
  // One channel, de-interleaved.
  std::vector<float> channel(int64_t c) const;
};

// What a WAV file may declare; anything else is refused before samples are
// read. The samples themselves are bounded by the file's size.
constexpr int64_t kMinSampleRate = 1000, kMaxSampleRate = 384000;
constexpr int64_t kMinChannels = 1, kMaxChannels = 32;

// Throws Error naming the file and the field on an unreadable or unsupported
// file.
Wav read_wav(const std::string &path);
// The same from the file's bytes (`path` names it in errors).
Wav parse_wav(const std::string &path, const std::vector<uint8_t> &bytes);
void write_wav(const std::string &path, const std::vector<float> &mono, int64_t sample_rate,
               bool float32 = true);

}  // namespace personaplex::audio
