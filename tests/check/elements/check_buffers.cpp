#include "check_buffers.h"

#include <cmath>

namespace checkutil {

static GstBuffer *timed(GstBuffer *buffer, size_t n, GstClockTime pts) {
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DURATION(buffer) = gst_util_uint64_scale_int(n, GST_SECOND, kRate);
  return buffer;
}

GstBuffer *f32_buffer(const float *samples, size_t n, GstClockTime pts) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, n * 4, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  for (size_t i = 0; i < n; ++i) GST_WRITE_FLOAT_LE(map.data + 4 * i, samples[i]);
  gst_buffer_unmap(buffer, &map);
  return timed(buffer, n, pts);
}

GstBuffer *s16_buffer(const float *samples, size_t n, GstClockTime pts) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, n * 2, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  for (size_t i = 0; i < n; ++i) {
    const long v = std::lrint(samples[i] * 32768.0);
    GST_WRITE_UINT16_LE(map.data + 2 * i, static_cast<guint16>(CLAMP(v, -32768L, 32767L)));
  }
  gst_buffer_unmap(buffer, &map);
  return timed(buffer, n, pts);
}

std::vector<float> f32_of(GstBuffer *buffer) {
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_READ);
  std::vector<float> pcm(map.size / 4);
  for (size_t i = 0; i < pcm.size(); ++i) pcm[i] = GST_READ_FLOAT_LE(map.data + 4 * i);
  gst_buffer_unmap(buffer, &map);
  return pcm;
}

void release_bus(GstBus *bus) {
  gst_bus_set_flushing(bus, TRUE);
  gst_object_unref(bus);
}

std::string pop_message(GstBus *bus, GstMessageType type, GError **error_out) {
  GstMessage *msg = gst_bus_pop_filtered(bus, type);
  if (!msg) return "";
  GError *error = nullptr;
  gchar *debug = nullptr;
  if (type == GST_MESSAGE_ERROR)
    gst_message_parse_error(msg, &error, &debug);
  else
    gst_message_parse_warning(msg, &error, &debug);
  std::string text = std::string(error->message) + " | " + (debug ? debug : "");
  if (error_out)
    *error_out = error;
  else
    g_error_free(error);
  g_free(debug);
  gst_message_unref(msg);
  return text;
}

}  // namespace checkutil
