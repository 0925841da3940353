// Fuzz target: a WAV file (engine/audio/wav.cpp), then the resampling a
// voice WAV goes through, whose work is sized by the file's rate.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "audio/resample.h"
#include "audio/wav.h"
#include "core/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    const personaplex::audio::Wav w = personaplex::audio::parse_wav("fuzz.wav", std::vector<uint8_t>(data, data + size));
    personaplex::audio::resample(w.channel(0), w.sample_rate, 24000);
  } catch (const personaplex::Error &) {
  }
  return 0;
}
