// Sample-rate conversion for prompt audio: a windowed-sinc (Kaiser) polyphase
// resampler, band-limited to the lower of the two Nyquist frequencies.
#pragma once

#include <cstdint>
#include <vector>

namespace personaplex::audio {

// Output length: ceil(input.size() * to / from).
std::vector<float> resample(const std::vector<float> &input, int64_t from, int64_t to);

}  // namespace personaplex::audio
