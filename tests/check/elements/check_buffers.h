// Helpers shared by the element tests: audio buffers in and out of
// harnesses, and errors or warnings popped from a bus.
#pragma once

#include <gst/gst.h>

#include <string>
#include <vector>

namespace checkutil {

constexpr int kRate = 24000;

// Mono samples as one timestamped F32LE or S16LE buffer at kRate.
GstBuffer *f32_buffer(const float *samples, size_t n, GstClockTime pts);
GstBuffer *s16_buffer(const float *samples, size_t n, GstClockTime pts);
// An F32LE buffer's samples.
std::vector<float> f32_of(GstBuffer *buffer);
// The next error or warning on the bus as "message | debug", "" when none;
// the GError is handed over through error_out when given.
std::string pop_message(GstBus *bus, GstMessageType type, GError **error_out = nullptr);
// Drops the bus and its pending messages (they hold their elements, which
// hold the bus: a cycle otherwise).
void release_bus(GstBus *bus);

}  // namespace checkutil
