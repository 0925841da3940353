// Float samples from and to the raw audio formats personaplex takes and
// gives (mono F32LE, S16LE; S32LE out): integers read as value / 2^(bits-1)
// and are written rounded and clipped.
#pragma once

#include <gst/audio/audio.h>

#include <cstddef>
#include <vector>

namespace gstpersonaplex {

// The pad template caps of that audio at the model's rate.
#define GST_PERSONAPLEX_PCM_CAPS                                                  \
  "audio/x-raw, format = (string) { F32LE, S16LE }, rate = (int) 24000, "         \
  "channels = (int) 1, layout = (string) interleaved"

// Reads `n` samples in `format` from `data` into `dst`.
void pcm_read_floats(const guint8 *data, size_t n, GstAudioFormat format, float *dst);

// Appends the samples of `buffer` (in `format`) to `out`.
void pcm_append_floats(GstBuffer *buffer, GstAudioFormat format, std::vector<float> *out);

// A new buffer holding `n` samples in `format`.
GstBuffer *pcm_buffer_from_floats(const float *samples, size_t n, GstAudioFormat format);

}  // namespace gstpersonaplex
