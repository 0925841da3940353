// Output caps negotiation for the mono PCM our elements write (personaplex's
// src pad, mimidec's): downstream's caps are queried and the format fixated
// to one it takes (the preferred one, else F32LE, S32LE, S16LE), so that
// `personaplex ! audioresample ! mulawenc` gets S16LE; the caps event's
// result is checked, and a real failure is a CORE/NEGOTIATION error naming
// what downstream takes.
#pragma once

#include <gst/audio/audio.h>

namespace gstpersonaplex {

// The src pad template caps: the formats written, at the model's rate.
#define GST_PERSONAPLEX_PCM_OUT_CAPS                                              \
  "audio/x-raw, format = (string) { F32LE, S32LE, S16LE }, rate = (int) 24000, "  \
  "channels = (int) 1, layout = (string) interleaved"

// The format for mono `rate` Hz audio out of `pad`, or UNKNOWN when
// downstream takes none (`*downstream`, when given, then holds its caps as
// text; g_free it).
GstAudioFormat pcm_pick_output_format(GstPad *pad, gint rate, GstAudioFormat preferred, gchar **downstream);

// Posts the error for output that downstream does not take.
void pcm_negotiation_error(GstElement *element, gint rate, const gchar *downstream, const gchar *refused);

// Picks the format, sends the caps event and checks that it was taken.
// Returns the format, or UNKNOWN (the error posted; silently when flushing).
GstAudioFormat pcm_negotiate_output(GstElement *element, GstPad *pad, gint rate, GstAudioFormat preferred);

}  // namespace gstpersonaplex
