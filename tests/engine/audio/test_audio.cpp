#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "audio/loudness.h"
#include "audio/resample.h"
#include "audio/wav.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::audio;

namespace {

std::vector<float> sine(double freq, int64_t rate, double seconds, double amp) {
  std::vector<float> s(size_t(rate * seconds));
  for (size_t i = 0; i < s.size(); ++i) s[i] = float(amp * std::sin(2 * M_PI * freq * double(i) / double(rate)));
  return s;
}

double rms(const std::vector<float> &x, size_t from, size_t to) {
  double acc = 0;
  for (size_t i = from; i < to; ++i) acc += double(x[i]) * x[i];
  return std::sqrt(acc / double(to - from));
}

}  // namespace

TEST(Wav, RoundTrip) {
  const std::string dir = test::temp_dir();
  auto s = sine(440, 24000, 0.1, 0.5);
  write_wav(dir + "/f.wav", s, 24000, true);
  Wav w = read_wav(dir + "/f.wav");
  EXPECT_EQ(w.sample_rate, 24000);
  EXPECT_EQ(w.channels, 1);
  EXPECT_EQ(w.samples, s);
  write_wav(dir + "/i.wav", s, 16000, false);
  w = read_wav(dir + "/i.wav");
  EXPECT_EQ(w.sample_rate, 16000);
  ASSERT_EQ(w.samples.size(), s.size());
  for (size_t i = 0; i < s.size(); ++i) EXPECT_NEAR(w.samples[i], s[i], 1.0 / 32767);
  EXPECT_THROW(read_wav(dir + "/none.wav"), Error);
}

// A WAV header of `rate` Hz, `channels` channels, 16 bits, and 8 data bytes.
static std::string wav_header(uint32_t rate, uint16_t channels) {
  std::string s = "RIFF";
  auto put = [&](uint64_t v, int n) { for (int i = 0; i < n; ++i) s += char(v >> (8 * i)); };
  put(36 + 8, 4);
  s += "WAVEfmt ";
  put(16, 4), put(1, 2), put(channels, 2), put(rate, 4), put(uint64_t(rate) * channels * 2, 4);
  put(channels * 2, 2), put(16, 2);
  s += "data";
  put(8, 4);
  return s + std::string(8, '\0');
}

// Rates once trusted sized the resampler's work (a 2 KB file at
// 4294967295 Hz asked for ~73 GB); they are refused by name now.
TEST(Wav, RefusesRatesAndChannelsOutsideSaneRanges) {
  auto error_of = [](uint32_t rate, uint16_t channels) {
    const std::string s = wav_header(rate, channels);
    try {
      parse_wav("x.wav", std::vector<uint8_t>(s.begin(), s.end()));
    } catch (const Error &e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of(24000, 1), "");
  EXPECT_EQ(error_of(384000, 32), "");
  EXPECT_EQ(error_of(1000, 2), "");
  for (uint32_t rate : {0u, 1u, 999u, 384001u, 4294967295u}) {
    const std::string e = error_of(rate, 1);
    EXPECT_NE(e.find("x.wav"), std::string::npos) << e;
    EXPECT_NE(e.find("sample rate " + std::to_string(rate) + " Hz"), std::string::npos) << e;
  }
  for (uint16_t channels : {0, 33, 65535}) {
    const std::string e = error_of(24000, channels);
    EXPECT_NE(e.find("channels " + std::to_string(channels)), std::string::npos) << e;
  }
}

TEST(Resample, KeepsABandLimitedSine) {
  for (int64_t from : {48000, 44100, 16000}) {
    auto in = sine(440, from, 0.5, 0.5);
    auto out = resample(in, from, 24000);
    EXPECT_EQ(int64_t(out.size()), (int64_t(in.size()) * 24000 + from - 1) / from);
    auto want = sine(440, 24000, 0.5, 0.5);
    double err = 0;
    for (size_t i = 1000; i + 1000 < want.size(); ++i) err = std::max(err, double(std::abs(out[i] - want[i])));
    EXPECT_LT(err, 2e-3) << from;
  }
}

TEST(Resample, RemovesWhatTheNewRateCannotHold) {
  auto in = sine(15000, 48000, 0.5, 0.5);  // above 12 kHz
  auto out = resample(in, 48000, 24000);
  EXPECT_LT(rms(out, 1000, out.size() - 1000), 1e-3);
}

TEST(Loudness, NormalizesToTheTarget) {
  auto s = sine(1000, 24000, 3.0, 0.1);
  const double before = integrated_loudness(s, 1, 24000);
  // A 1 kHz sine of amplitude A: mean square A^2 / 2, K-weighting gain at
  // 1 kHz cancelled by the -0.691 offset: 20 log10(A) - 3.01 LUFS.
  EXPECT_NEAR(before, 20 * std::log10(0.1) - 3.01, 0.1);
  apply_gain(s, loudness_gain(before, -24.0));
  EXPECT_NEAR(integrated_loudness(s, 1, 24000), -24.0, 0.05);
  std::vector<float> silence(48000, 0.0f);
  EXPECT_FALSE(std::isfinite(integrated_loudness(silence, 1, 24000)));
  EXPECT_EQ(loudness_gain(integrated_loudness(silence, 1, 24000)), 1.0);
}
