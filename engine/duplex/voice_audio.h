// Voice prompts from audio: a WAV file is brought to Mimi's rate and to
// -24 LUFS, cut into frames (the last one zero-padded) and encoded by a fresh
// Mimi stream, giving the codes that the voice phase feeds as agent audio.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "lm/prompt.h"

namespace personaplex::mimi {
class Mimi;
}

namespace personaplex::duplex {

// Channel 0 of the file, resampled to `sample_rate` and loudness-normalized
// to `target_lufs` (measured on all channels, as the reference does). Warns
// when the audio cannot be measured or clips after the gain.
std::vector<float> load_voice_audio(const std::string &wav_path, int64_t sample_rate,
                                    const lm::WarningFn &warn = {}, double target_lufs = -24.0);

// Codes of audio already at Mimi's rate and loudness: int64 [8, frames] (CPU).
at::Tensor encode_voice(const mimi::Mimi &mimi, const std::vector<float> &pcm);

}  // namespace personaplex::duplex
