#include "audio/wav.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace personaplex::audio {
namespace {

uint32_t u32(const uint8_t *p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint16_t u16(const uint8_t *p) { return uint16_t(p[0] | p[1] << 8); }

float sample_at(const uint8_t *p, int bits, bool is_float) {
  if (is_float) {
    if (bits == 32) {
      float f;
      uint32_t v = u32(p);
      std::memcpy(&f, &v, 4);
      return f;
    }
    uint64_t v = uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32;
    double d;
    std::memcpy(&d, &v, 8);
    return float(d);
  }
  switch (bits) {
    case 8: return (float(p[0]) - 128.0f) / 128.0f;
    case 16: return float(int16_t(u16(p))) / 32768.0f;
    case 24: {
      int32_t v = int32_t(uint32_t(p[0]) << 8 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 24) >> 8;
      return float(v) / 8388608.0f;
    }
    default: return float(int32_t(u32(p))) / 2147483648.0f;
  }
}

void put32(std::string &s, uint32_t v) { for (int i = 0; i < 4; ++i) s.push_back(char(v >> (8 * i))); }
void put16(std::string &s, uint16_t v) { s.push_back(char(v)); s.push_back(char(v >> 8)); }

}  // namespace

std::vector<float> Wav::channel(int64_t c) const {
  std::vector<float> out(static_cast<size_t>(frames()));
  for (int64_t i = 0; i < frames(); ++i) out[size_t(i)] = samples[size_t(i * channels + c)];
  return out;
}

Wav read_wav(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the WAV file");
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": cannot read the WAV file");
  return parse_wav(path, b);
}

Wav parse_wav(const std::string &path, const std::vector<uint8_t> &b) {
  auto bad = [&](const std::string &why) { return Error(path + ": not a supported WAV file: " + why); };
  if (b.size() < 12 || std::memcmp(b.data(), "RIFF", 4) || std::memcmp(b.data() + 8, "WAVE", 4))
    throw bad("no RIFF/WAVE header");
  int format = 0, bits = 0;
  Wav w;
  const uint8_t *data = nullptr;
  size_t data_size = 0;
  for (size_t pos = 12; pos + 8 <= b.size();) {
    const uint32_t size = u32(&b[pos + 4]);
    const size_t body = pos + 8, avail = std::min<size_t>(size, b.size() - body);
    if (!std::memcmp(&b[pos], "fmt ", 4) && avail >= 16) {
      format = u16(&b[body]);
      w.channels = u16(&b[body + 2]);
      w.sample_rate = u32(&b[body + 4]);
      bits = u16(&b[body + 14]);
      if (format == 0xFFFE && avail >= 26) format = u16(&b[body + 24]);  // extensible: sub-format
    } else if (!std::memcmp(&b[pos], "data", 4)) {
      data = &b[body];
      data_size = avail;
    }
    pos = body + size + (size & 1);
  }
  if (!format) throw bad("no fmt chunk");
  if (!data) throw bad("no data chunk");
  const bool is_float = format == 3;
  if (!(format == 1 || is_float) || (is_float && bits != 32 && bits != 64) ||
      (!is_float && bits != 8 && bits != 16 && bits != 24 && bits != 32))
    throw bad("format " + std::to_string(format) + " with " + std::to_string(bits) + " bits");
  // Rates and channels outside what audio uses are damage or an attack:
  // resampling sizes its work from the rate.
  if (w.channels < kMinChannels || w.channels > kMaxChannels)
    throw bad("channels " + std::to_string(w.channels) + " outside " + std::to_string(kMinChannels) + "-" +
              std::to_string(kMaxChannels));
  if (w.sample_rate < kMinSampleRate || w.sample_rate > kMaxSampleRate)
    throw bad("sample rate " + std::to_string(w.sample_rate) + " Hz outside " + std::to_string(kMinSampleRate) +
              "-" + std::to_string(kMaxSampleRate) + " Hz");
  const size_t width = size_t(bits / 8), count = data_size / width;
  w.samples.resize(count - count % size_t(w.channels));
  for (size_t i = 0; i < w.samples.size(); ++i) w.samples[i] = sample_at(data + i * width, bits, is_float);
  return w;
}

void write_wav(const std::string &path, const std::vector<float> &mono, int64_t sample_rate,
               bool float32) {
  const uint16_t bits = float32 ? 32 : 16;
  const uint32_t data_bytes = uint32_t(mono.size() * (bits / 8));
  std::string s = "RIFF";
  put32(s, 36 + data_bytes);
  s += "WAVEfmt ";
  put32(s, 16);
  put16(s, float32 ? 3 : 1);
  put16(s, 1);
  put32(s, uint32_t(sample_rate));
  put32(s, uint32_t(sample_rate) * (bits / 8));
  put16(s, bits / 8);
  put16(s, bits);
  s += "data";
  put32(s, data_bytes);
  for (float x : mono) {
    if (float32) {
      uint32_t v;
      std::memcpy(&v, &x, 4);
      put32(s, v);
    } else {
      put16(s, uint16_t(int16_t(std::lround(std::clamp(x, -1.0f, 1.0f) * 32767.0f))));
    }
  }
  std::ofstream out(path, std::ios::binary);
  out.write(s.data(), std::streamsize(s.size()));
  if (!out) throw Error(path + ": cannot write the WAV file");
}

}  // namespace personaplex::audio
