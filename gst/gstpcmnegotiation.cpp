#include "gstpcmnegotiation.h"

#include <initializer_list>

GST_DEBUG_CATEGORY_STATIC(pcm_negotiation_debug);
#define GST_CAT_DEFAULT pcm_negotiation_debug

namespace gstpersonaplex {
namespace {

GstCaps *mono_caps(GstAudioFormat format, gint rate) {
  GstAudioInfo info;
  gst_audio_info_set_format(&info, format, rate, 1, nullptr);
  return gst_audio_info_to_caps(&info);
}

void init_debug() {
  static gsize done = 0;
  if (g_once_init_enter(&done)) {
    GST_DEBUG_CATEGORY_INIT(pcm_negotiation_debug, "personaplexpcm", 0, "PCM output negotiation");
    g_once_init_leave(&done, 1);
  }
}

}  // namespace

GstAudioFormat pcm_pick_output_format(GstPad *pad, gint rate, GstAudioFormat preferred, gchar **downstream) {
  init_debug();
  // Downstream's caps as a whole: a converter answers with what its own peer takes.
  GstCaps *peer = gst_pad_peer_query_caps(pad, nullptr);
  GstAudioFormat chosen = GST_AUDIO_FORMAT_UNKNOWN;
  for (GstAudioFormat format : {preferred, GST_AUDIO_FORMAT_F32LE, GST_AUDIO_FORMAT_S32LE, GST_AUDIO_FORMAT_S16LE}) {
    if (format == GST_AUDIO_FORMAT_UNKNOWN) continue;
    GstCaps *caps = mono_caps(format, rate);
    const bool takes = gst_caps_can_intersect(caps, peer);
    gst_caps_unref(caps);
    if (takes) {
      chosen = format;
      break;
    }
  }
  GST_DEBUG_OBJECT(pad, "downstream takes %" GST_PTR_FORMAT ": %s", peer, gst_audio_format_to_string(chosen));
  if (downstream) *downstream = chosen == GST_AUDIO_FORMAT_UNKNOWN ? gst_caps_to_string(peer) : nullptr;
  gst_caps_unref(peer);
  return chosen;
}

void pcm_negotiation_error(GstElement *element, gint rate, const gchar *downstream, const gchar *refused) {
  if (refused)
    GST_ELEMENT_ERROR(element, CORE, NEGOTIATION,
                      ("Downstream refused mono audio caps %s; it takes %s", refused, downstream),
                      ("add audioconvert ! audioresample before the element that takes these"));
  else
    GST_ELEMENT_ERROR(element, CORE, NEGOTIATION,
                      ("Downstream takes no mono F32LE, S32LE or S16LE audio at %d Hz; it takes %s", rate, downstream),
                      ("add audioconvert ! audioresample before the element that takes these"));
}

GstAudioFormat pcm_negotiate_output(GstElement *element, GstPad *pad, gint rate, GstAudioFormat preferred) {
  gchar *downstream = nullptr;
  const GstAudioFormat format = pcm_pick_output_format(pad, rate, preferred, &downstream);
  if (format == GST_AUDIO_FORMAT_UNKNOWN) {
    pcm_negotiation_error(element, rate, downstream, nullptr);
    g_free(downstream);
    return format;
  }
  GstCaps *caps = mono_caps(format, rate);
  GST_DEBUG_OBJECT(element, "output caps %" GST_PTR_FORMAT, caps);
  // A sticky event on an unlinked pad is kept for later and counts as taken.
  const bool taken = gst_pad_push_event(pad, gst_event_new_caps(gst_caps_ref(caps)));
  if (!taken && GST_PAD_IS_FLUSHING(pad)) {
    gst_caps_unref(caps);
    return GST_AUDIO_FORMAT_UNKNOWN;
  }
  if (!taken) {
    GstCaps *peer = gst_pad_peer_query_caps(pad, nullptr);
    gchar *takes = gst_caps_to_string(peer), *refused = gst_caps_to_string(caps);
    pcm_negotiation_error(element, rate, takes, refused);
    g_free(takes);
    g_free(refused);
    gst_caps_unref(peer);
  }
  gst_caps_unref(caps);
  return taken ? format : GST_AUDIO_FORMAT_UNKNOWN;
}

}  // namespace gstpersonaplex
