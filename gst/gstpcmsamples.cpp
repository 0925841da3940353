#include "gstpcmsamples.h"

#include <cmath>

namespace gstpersonaplex {

void pcm_read_floats(const guint8 *data, size_t n, GstAudioFormat format, float *dst) {
  if (format == GST_AUDIO_FORMAT_S32LE) {
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(static_cast<gint32>(GST_READ_UINT32_LE(data + 4 * i)) / 2147483648.0);
  } else if (format == GST_AUDIO_FORMAT_S16LE) {
    for (size_t i = 0; i < n; ++i) dst[i] = static_cast<gint16>(GST_READ_UINT16_LE(data + 2 * i)) / 32768.0f;
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = GST_READ_FLOAT_LE(data + 4 * i);
  }
}

void pcm_append_floats(GstBuffer *buffer, GstAudioFormat format, std::vector<float> *out) {
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return;
  const size_t n = map.size / (format == GST_AUDIO_FORMAT_S16LE ? 2 : 4);
  const size_t old = out->size();
  out->resize(old + n);
  pcm_read_floats(map.data, n, format, out->data() + old);
  gst_buffer_unmap(buffer, &map);
}

GstBuffer *pcm_buffer_from_floats(const float *samples, size_t n, GstAudioFormat format) {
  const size_t width = format == GST_AUDIO_FORMAT_S16LE ? 2 : 4;
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, n * width, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  if (width == 2) {
    for (size_t i = 0; i < n; ++i) {
      const long v = std::lrint(static_cast<double>(samples[i]) * 32768.0);
      GST_WRITE_UINT16_LE(map.data + 2 * i, static_cast<guint16>(CLAMP(v, -32768L, 32767L)));
    }
  } else if (format == GST_AUDIO_FORMAT_S32LE) {
    for (size_t i = 0; i < n; ++i) {
      const long long v = std::llrint(static_cast<double>(samples[i]) * 2147483648.0);
      GST_WRITE_UINT32_LE(map.data + 4 * i, static_cast<guint32>(CLAMP(v, -2147483648LL, 2147483647LL)));
    }
  } else {
    for (size_t i = 0; i < n; ++i) GST_WRITE_FLOAT_LE(map.data + 4 * i, samples[i]);
  }
  gst_buffer_unmap(buffer, &map);
  return buffer;
}

}  // namespace gstpersonaplex
