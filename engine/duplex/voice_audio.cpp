#include "duplex/voice_audio.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "audio/loudness.h"
#include "audio/resample.h"
#include "audio/wav.h"
#include "mimi/mimi.h"
#include "mimi/state.h"

namespace personaplex::duplex {

using namespace audio;

std::vector<float> load_voice_audio(const std::string &wav_path, int64_t sample_rate,
                                    const lm::WarningFn &warn, double target_lufs) {
  Wav w = read_wav(wav_path);
  if (w.frames() == 0) throw Error(wav_path + ": the voice file holds no audio");
  // The reference resamples every channel, measures them together, then
  // encodes channel 0.
  std::vector<float> all;
  std::vector<std::vector<float>> chans;
  for (int64_t c = 0; c < w.channels; ++c) chans.push_back(resample(w.channel(c), w.sample_rate, sample_rate));
  all.resize(chans[0].size() * size_t(w.channels));
  for (size_t i = 0; i < chans[0].size(); ++i)
    for (int64_t c = 0; c < w.channels; ++c) all[i * size_t(w.channels) + size_t(c)] = chans[size_t(c)][i];
  const double lufs = integrated_loudness(all, w.channels, sample_rate);
  std::vector<float> mono = std::move(chans[0]);
  if (!std::isfinite(lufs)) {
    if (warn) warn(wav_path + ": voice too short or silent to measure its loudness; used as is");
    return mono;
  }
  apply_gain(mono, loudness_gain(lufs, target_lufs));
  float peak = 0;
  for (float x : mono) peak = std::max(peak, std::abs(x));
  if (peak > 1.0f && warn)
    warn(wav_path + ": the voice clips after loudness normalization (peak " + std::to_string(peak) + ")");
  return mono;
}

at::Tensor encode_voice(const mimi::Mimi &mimi, const std::vector<float> &pcm) {
  const int64_t F = mimi.frame_size();
  const int64_t frames = (int64_t(pcm.size()) + F - 1) / F;
  if (frames == 0) throw Error("voice: no audio to encode");
  at::Tensor padded = at::zeros({frames * F}, at::kFloat);
  std::copy(pcm.begin(), pcm.end(), padded.data_ptr<float>());
  auto state = mimi.new_state(1);
  std::vector<at::Tensor> codes;
  for (int64_t f = 0; f < frames; ++f)
    codes.push_back(mimi.encode_frame(padded.narrow(0, f * F, F).view({1, 1, F}), *state).to(at::kCPU));
  return at::cat(codes, 2)[0].narrow(0, 0, lm::kAudioCodebooks).contiguous();
}

}  // namespace personaplex::duplex
