// personaplex: the full-duplex conversation element (user speech in, the
// model's speech and words out).
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_PERSONAPLEX (gst_personaplex_get_type())
G_DECLARE_FINAL_TYPE(GstPersonaPlex, gst_personaplex, GST, PERSONAPLEX, GstElement)

GST_ELEMENT_REGISTER_DECLARE(personaplex);

G_END_DECLS
