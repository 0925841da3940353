#include "audio/loudness.h"

#include <ebur128.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace personaplex::audio {

double integrated_loudness(const std::vector<float> &interleaved, int64_t channels,
                           int64_t sample_rate) {
  ebur128_state *st = ebur128_init(static_cast<unsigned>(channels),
                                   static_cast<unsigned long>(sample_rate), EBUR128_MODE_I);
  if (!st)
    throw Error("loudness: cannot measure " + std::to_string(channels) + " channels at " +
                std::to_string(sample_rate) + " Hz");
  double lufs = -std::numeric_limits<double>::infinity();
  const size_t frames = interleaved.size() / size_t(channels);
  if (ebur128_add_frames_float(st, interleaved.data(), frames) != EBUR128_SUCCESS ||
      ebur128_loudness_global(st, &lufs) != EBUR128_SUCCESS)
    lufs = -std::numeric_limits<double>::infinity();
  ebur128_destroy(&st);
  return lufs;
}

double loudness_gain(double lufs, double target_lufs) {
  return std::isfinite(lufs) ? std::pow(10.0, (target_lufs - lufs) / 20.0) : 1.0;
}

void apply_gain(std::vector<float> &samples, double gain) {
  for (float &x : samples) x = float(double(x) * gain);
}

}  // namespace personaplex::audio
