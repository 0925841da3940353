// The enumerated properties of the plugin's elements, registered as GEnum
// types so that gst-inspect-1.0 lists their values and a bad value is
// refused when it is set.
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef enum {
  GST_PERSONAPLEX_TEXT_UNIT_PIECE,
  GST_PERSONAPLEX_TEXT_UNIT_WORD,
  GST_PERSONAPLEX_TEXT_UNIT_CUE,
} GstPersonaPlexTextUnit;

typedef enum {
  GST_PERSONAPLEX_DTYPE_AUTO,
  GST_PERSONAPLEX_DTYPE_BFLOAT16,
  GST_PERSONAPLEX_DTYPE_FLOAT16,
  GST_PERSONAPLEX_DTYPE_FLOAT32,
} GstPersonaPlexDType;

typedef enum {
  GST_PERSONAPLEX_WEIGHT_FORMAT_AUTO,
  GST_PERSONAPLEX_WEIGHT_FORMAT_INT8,
  GST_PERSONAPLEX_WEIGHT_FORMAT_FP8,
} GstPersonaPlexWeightFormat;

typedef enum {
  GST_PERSONAPLEX_KV_CACHE_AUTO,
  GST_PERSONAPLEX_KV_CACHE_FP8,
} GstPersonaPlexKvCache;

#define GST_TYPE_PERSONAPLEX_TEXT_UNIT (gst_personaplex_text_unit_get_type())
#define GST_TYPE_PERSONAPLEX_DTYPE (gst_personaplex_dtype_get_type())
// The codec's dtype takes the same values; its auto is float32 everywhere.
#define GST_TYPE_PERSONAPLEX_CODEC_DTYPE (gst_personaplex_codec_dtype_get_type())
#define GST_TYPE_PERSONAPLEX_WEIGHT_FORMAT (gst_personaplex_weight_format_get_type())
GType gst_personaplex_text_unit_get_type(void);
GType gst_personaplex_dtype_get_type(void);
GType gst_personaplex_codec_dtype_get_type(void);
GType gst_personaplex_weight_format_get_type(void);
#define GST_TYPE_PERSONAPLEX_KV_CACHE (gst_personaplex_kv_cache_get_type())
GType gst_personaplex_kv_cache_get_type(void);

G_END_DECLS

// The nick of `value` in the enum `type` ("" when none).
const char *gst_personaplex_enum_nick(GType type, gint value);
// The value of `nick` in `type`, or `fallback` when it has none.
gint gst_personaplex_enum_value(GType type, const char *nick, gint fallback);
