#include "gstpersonaplexenums.h"

GType gst_personaplex_text_unit_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PERSONAPLEX_TEXT_UNIT_PIECE, "One buffer per SentencePiece piece, as the model gives them (for machines)",
       "piece"},
      {GST_PERSONAPLEX_TEXT_UNIT_WORD, "One buffer per word, lasting until the next word starts", "word"},
      {GST_PERSONAPLEX_TEXT_UNIT_CUE, "Subtitle cues: words grouped into lines shown long enough to read", "cue"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstPersonaPlexTextUnit", values));
  return type;
}

GType gst_personaplex_dtype_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PERSONAPLEX_DTYPE_AUTO, "bfloat16 on CUDA, float32 on the CPU", "auto"},
      {GST_PERSONAPLEX_DTYPE_BFLOAT16, "bfloat16", "bfloat16"},
      {GST_PERSONAPLEX_DTYPE_FLOAT16, "float16", "float16"},
      {GST_PERSONAPLEX_DTYPE_FLOAT32, "float32", "float32"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstPersonaPlexDType", values));
  return type;
}

GType gst_personaplex_codec_dtype_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PERSONAPLEX_DTYPE_AUTO, "float32, the reference's codes (on CUDA too)", "auto"},
      {GST_PERSONAPLEX_DTYPE_BFLOAT16, "bfloat16", "bfloat16"},
      {GST_PERSONAPLEX_DTYPE_FLOAT16, "float16", "float16"},
      {GST_PERSONAPLEX_DTYPE_FLOAT32, "float32", "float32"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstPersonaPlexCodecDType", values));
  return type;
}

GType gst_personaplex_weight_format_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PERSONAPLEX_WEIGHT_FORMAT_AUTO, "As loaded, in the dtype", "auto"},
      {GST_PERSONAPLEX_WEIGHT_FORMAT_INT8, "Per-row scaled int8 (about half the memory)", "int8"},
      {GST_PERSONAPLEX_WEIGHT_FORMAT_FP8,
       "Per-row scaled float8 matmuls (CUDA GPUs of compute capability 8.9 and later)", "fp8"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type))
    g_once_init_leave(&type, g_enum_register_static("GstPersonaPlexWeightFormat", values));
  return type;
}

GType gst_personaplex_kv_cache_get_type(void) {
  static GType type = 0;
  static const GEnumValue values[] = {
      {GST_PERSONAPLEX_KV_CACHE_AUTO, "In the model's dtype", "auto"},
      {GST_PERSONAPLEX_KV_CACHE_FP8,
       "float8 (e4m3) with a scale per key and value vector: half the memory of bf16", "fp8"},
      {0, nullptr, nullptr}};
  if (g_once_init_enter(&type)) g_once_init_leave(&type, g_enum_register_static("GstPersonaPlexKvCache", values));
  return type;
}

const char *gst_personaplex_enum_nick(GType type, gint value) {
  GEnumClass *klass = static_cast<GEnumClass *>(g_type_class_ref(type));
  const GEnumValue *v = g_enum_get_value(klass, value);
  const char *nick = v ? v->value_nick : "";
  g_type_class_unref(klass);  // static types: the strings stay
  return nick;
}

gint gst_personaplex_enum_value(GType type, const char *nick, gint fallback) {
  GEnumClass *klass = static_cast<GEnumClass *>(g_type_class_ref(type));
  const GEnumValue *v = nick ? g_enum_get_value_by_nick(klass, nick) : nullptr;
  const gint value = v ? v->value : fallback;
  g_type_class_unref(klass);
  return value;
}
