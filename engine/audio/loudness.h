// Loudness normalization of prompt audio, as the reference does it: measure
// the integrated loudness (ITU-R BS.1770, gated) and apply the gain that
// brings it to the target. No limiting: like the reference, samples may end
// up beyond [-1, 1].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace personaplex::audio {

// Integrated loudness in LUFS of interleaved audio (channel weights of
// BS.1770: 1 for the first three, 1.41 for the next two); -inf for silence
// or audio shorter than one 400 ms gating block.
double integrated_loudness(const std::vector<float> &interleaved, int64_t channels,
                           int64_t sample_rate);

// The gain (linear) that brings audio of `lufs` to `target_lufs`; 1 when the
// loudness could not be measured.
double loudness_gain(double lufs, double target_lufs = -24.0);

// Scales in place (in double precision, then rounded to float).
void apply_gain(std::vector<float> &samples, double gain);

}  // namespace personaplex::audio
