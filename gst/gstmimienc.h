// mimienc: 24 kHz mono PCM -> Mimi codes, one 80 ms frame per buffer.
#pragma once

#include <gst/audio/gstaudioencoder.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MIMI_ENC (gst_mimi_enc_get_type())
G_DECLARE_FINAL_TYPE(GstMimiEnc, gst_mimi_enc, GST, MIMI_ENC, GstAudioEncoder)

GST_ELEMENT_REGISTER_DECLARE(mimienc);

G_END_DECLS
