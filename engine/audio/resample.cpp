#include "audio/resample.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace personaplex::audio {
namespace {

constexpr int kHalfTaps = 32;    // zero crossings on each side
constexpr double kBeta = 8.6;    // Kaiser window: ~90 dB stop band

double bessel_i0(double x) {
  double sum = 1, term = 1;
  for (int k = 1; k < 50; ++k) {
    term *= (x / (2 * k)) * (x / (2 * k));
    sum += term;
    if (term < 1e-12 * sum) break;
  }
  return sum;
}

// The Kaiser window over |r| in [0, 1], tabulated once: odd rate pairs
// (383999 -> 24000 Hz) need millions of kernel values, and a Bessel series
// for each cost seconds.
constexpr int kWindowPoints = 1 << 16;

double kaiser(double r) {
  static const std::vector<double> table = [] {
    std::vector<double> t(kWindowPoints + 1);
    for (int i = 0; i <= kWindowPoints; ++i) {
      const double x = double(i) / kWindowPoints;
      t[size_t(i)] = bessel_i0(kBeta * std::sqrt(std::max(0.0, 1 - x * x))) / bessel_i0(kBeta);
    }
    return t;
  }();
  const double pos = std::abs(r) * kWindowPoints;
  const size_t i = std::min(size_t(pos), size_t(kWindowPoints - 1));
  const double f = pos - double(i);
  return table[i] + (table[i + 1] - table[i]) * f;
}

double kernel(double x, double cutoff) {
  const double half = kHalfTaps / cutoff;
  if (std::abs(x) >= half) return 0;
  const double a = M_PI * cutoff * x;
  return cutoff * (a == 0 ? 1 : std::sin(a) / a) * kaiser(x / half);
}

}  // namespace

std::vector<float> resample(const std::vector<float> &input, int64_t from, int64_t to) {
  if (from <= 0 || to <= 0) throw Error("resample: bad sample rates");
  if (from == to || input.empty()) return input;
  const int64_t g = std::gcd(from, to), up = to / g, down = from / g;
  const double cutoff = std::min(1.0, double(to) / double(from));
  const int64_t half = int64_t(std::ceil(kHalfTaps / cutoff));
  // Output n sits at input position n * down / up = base + phase / up. The
  // phases' filters are tabulated unless there are more phases than
  // outputs (coprime rates, short input): then each output makes its own.
  const int64_t n_in = int64_t(input.size());
  const int64_t n_out = (n_in * up + down - 1) / down;
  const bool tabulate = up <= n_out;
  std::vector<std::vector<float>> phases(tabulate ? size_t(up) : 1, std::vector<float>(size_t(2 * half)));
  auto make = [&](int64_t p, std::vector<float> &h) {
    for (int64_t j = 0; j < 2 * half; ++j)
      h[size_t(j)] = float(kernel(double(p) / double(up) - double(j - half + 1), cutoff));
  };
  if (tabulate)
    for (int64_t p = 0; p < up; ++p) make(p, phases[size_t(p)]);
  std::vector<float> out(static_cast<size_t>(n_out));
  for (int64_t n = 0; n < n_out; ++n) {
    const int64_t base = n * down / up, phase = n * down % up;
    if (!tabulate) make(phase, phases[0]);
    const auto &h = phases[tabulate ? size_t(phase) : 0];
    double acc = 0;
    for (int64_t j = 0; j < 2 * half; ++j) {
      const int64_t k = base + j - half + 1;
      if (k >= 0 && k < n_in) acc += double(h[size_t(j)]) * input[size_t(k)];
    }
    out[size_t(n)] = float(acc);
  }
  return out;
}

}  // namespace personaplex::audio
