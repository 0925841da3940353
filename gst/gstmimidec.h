// mimidec: Mimi codes -> 24 kHz mono PCM, one 80 ms frame per buffer.
#pragma once

#include <gst/audio/gstaudiodecoder.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MIMI_DEC (gst_mimi_dec_get_type())
G_DECLARE_FINAL_TYPE(GstMimiDec, gst_mimi_dec, GST, MIMI_DEC, GstAudioDecoder)

GST_ELEMENT_REGISTER_DECLARE(mimidec);

G_END_DECLS
