// Float samples from and to the raw audio formats personaplex takes and
// gives (mono F32LE and S16LE): S16 reads as value / 32768 and is written
// rounded and clipped.
#pragma once

#include <gst/audio/audio.h>

#include <cstddef>
#include <vector>

namespace gstpersonaplex {

// Appends the samples of `buffer` (in `format`) to `out`.
void pcm_append_floats(GstBuffer *buffer, GstAudioFormat format, std::vector<float> *out);

// A new buffer holding `n` samples in `format`.
GstBuffer *pcm_buffer_from_floats(const float *samples, size_t n, GstAudioFormat format);

}  // namespace gstpersonaplex
