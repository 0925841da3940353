#include "gstmimimodel.h"

#include <sys/stat.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <exception>

#include "core/device.h"
#include "core/shared_cache.h"
#include "gstdevicename.h"
#include "gstpersonaplexenums.h"
#include "mimi/config.h"

GST_DEBUG_CATEGORY_STATIC(mimi_model_debug);
#define GST_CAT_DEFAULT mimi_model_debug

namespace gstpersonaplex {

using personaplex::mimi::Mimi;

void mimi_model_install_properties(GObjectClass *klass) {
  static gsize debug_once = 0;
  if (g_once_init_enter(&debug_once)) {
    GST_DEBUG_CATEGORY_INIT(mimi_model_debug, "mimimodel", 0, "Mimi model loading and sharing");
    g_once_init_leave(&debug_once, 1);
  }
  const auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(klass, MIMI_MODEL_PROP_WEIGHTS,
      g_param_spec_string("weights", "Weights",
          "Mimi weights file (safetensors, the released tokenizer checkpoint layout)",
          nullptr, flags));
  g_object_class_install_property(klass, MIMI_MODEL_PROP_CONFIG,
      g_param_spec_string("config", "Config",
          "Mimi config.json giving the model's sizes (empty: the released model's)",
          nullptr, flags));
  g_object_class_install_property(klass, MIMI_MODEL_PROP_DEVICE,
      g_param_spec_string("device", "Device",
          "Compute device: \"auto\" (the first GPU if there is one, else the CPU), "
          "\"cpu\", \"cuda\" or \"cuda:N\"",
          GST_PERSONAPLEX_DEFAULT_DEVICE, flags));
  g_object_class_install_property(klass, MIMI_MODEL_PROP_DTYPE,
      g_param_spec_enum("dtype", "Data type",
          "Data type of the codec: auto is float32 (the reference's codes); bfloat16 is faster on GPUs "
          "and differs within bf16 rounding; float16 needs a GPU",
          GST_TYPE_PERSONAPLEX_CODEC_DTYPE, GST_PERSONAPLEX_DTYPE_AUTO, flags));
}

static const char *const property_names[] = {nullptr, "weights", "config", "device", "dtype"};

static std::string *field_of(MimiModelSettings *settings, guint prop_id) {
  switch (prop_id) {
    case MIMI_MODEL_PROP_WEIGHTS: return &settings->weights;
    case MIMI_MODEL_PROP_CONFIG: return &settings->config;
    case MIMI_MODEL_PROP_DEVICE: return &settings->device;
    case MIMI_MODEL_PROP_DTYPE: return &settings->dtype;
    default: return nullptr;
  }
}

void mimi_model_set_property(GObject *object, MimiModelSettings *settings, guint prop_id,
                             const GValue *value, GParamSpec *pspec) {
  std::string *field = field_of(settings, prop_id);
  if (!field) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    return;
  }
  GstElement *element = GST_ELEMENT(object);
  const gchar *text = prop_id == MIMI_MODEL_PROP_DTYPE
                          ? gst_personaplex_enum_nick(GST_TYPE_PERSONAPLEX_CODEC_DTYPE, g_value_get_enum(value))
                          : g_value_get_string(value);
  GST_OBJECT_LOCK(element);
  // The model is loaded when the element starts; a change after that would
  // silently not apply.
  if (GST_STATE(element) > GST_STATE_READY) {
    GST_OBJECT_UNLOCK(element);
    g_warning("%s: property '%s' can only be changed in the NULL or READY state",
              GST_ELEMENT_NAME(element), property_names[prop_id]);
    return;
  }
  if (prop_id == MIMI_MODEL_PROP_DEVICE && (!text || !*text))
    *field = GST_PERSONAPLEX_DEFAULT_DEVICE;
  else
    *field = text ? text : "";
  const std::string device = settings->device;
  GST_OBJECT_UNLOCK(element);
  if (prop_id == MIMI_MODEL_PROP_DEVICE) device_name_check_on_set(element, device);
}

void mimi_model_get_property(GObject *object, const MimiModelSettings *settings, guint prop_id,
                             GValue *value, GParamSpec *pspec) {
  const std::string *field = field_of(const_cast<MimiModelSettings *>(settings), prop_id);
  if (!field) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    return;
  }
  GST_OBJECT_LOCK(object);
  if (prop_id == MIMI_MODEL_PROP_DTYPE)
    g_value_set_enum(value, gst_personaplex_enum_value(GST_TYPE_PERSONAPLEX_CODEC_DTYPE, field->c_str(), 0));
  else
    g_value_set_string(value, field->empty() && prop_id != MIMI_MODEL_PROP_DEVICE ? nullptr : field->c_str());
  GST_OBJECT_UNLOCK(object);
}

MimiModelSettings mimi_model_settings_copy(GstElement *element,
                                           const MimiModelSettings *settings) {
  GST_OBJECT_LOCK(element);
  MimiModelSettings copy = *settings;
  GST_OBJECT_UNLOCK(element);
  return copy;
}

// A file's identity for the cache: its canonical path, size and mtime, so a
// file replaced on disk is loaded anew.
static std::string file_identity(const std::string &path) {
  if (path.empty()) return "";
  char resolved[PATH_MAX];
  std::string id = realpath(path.c_str(), resolved) ? resolved : path;
  struct stat st {};
  if (stat(path.c_str(), &st) == 0)
    id += ":" + std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
          std::to_string(st.st_mtim.tv_nsec);
  return id;
}

static bool file_missing(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) != 0 && errno == ENOENT;
}

// Checks what can be checked before loading, posting the error; false on failure.
static bool check_settings(GstElement *element, const MimiModelSettings &s) {
  if (s.weights.empty()) {
    GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS, ("No Mimi weights file set"),
                      ("set the 'weights' property to a Mimi safetensors file"));
    return false;
  }
  for (const std::string *path : {&s.weights, &s.config}) {
    if (!path->empty() && file_missing(*path)) {
      GST_ELEMENT_ERROR(element, RESOURCE, NOT_FOUND,
                        ("Mimi %s file \"%s\" not found",
                         path == &s.weights ? "weights" : "config", path->c_str()),
                        (nullptr));
      return false;
    }
  }
  if (!s.config.empty()) {
    try {
      personaplex::mimi::MimiConfig::from_json_file(s.config);
    } catch (const std::exception &e) {
      GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS,
                        ("Invalid Mimi config file \"%s\": %s", s.config.c_str(), e.what()),
                        (nullptr));
      return false;
    }
  }
  return true;
}

// Mimi alone is several times slower than real time on a CPU core, hence a
// GPU whenever there is one.
static at::Device resolve_device(const std::string &spec) {
  if (spec == "auto") return at::hasCUDA() ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  return personaplex::parse_device(spec);
}

std::shared_ptr<const Mimi> mimi_model_acquire(GstElement *element,
                                               const MimiModelSettings &s) {
  if (!check_settings(element, s) || !device_name_check_on_start(element, s.device)) return nullptr;
  at::Device device(at::kCPU);
  try {
    device = resolve_device(s.device);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(element, RESOURCE, SETTINGS,
                      ("Unusable device \"%s\": %s", s.device.c_str(), e.what()),
                      ("the accepted values are %s", kDeviceValues));
    return nullptr;
  }
  // float32 unless asked: the codec's codes are then those of the reference.
  const at::ScalarType dtype = s.dtype == "auto" ? at::kFloat : personaplex::parse_dtype(s.dtype);
  const std::string key = file_identity(s.weights) + "|" + file_identity(s.config) + "|" +
                          device.str() + "|" + personaplex::dtype_name(dtype);
  try {
    auto model = personaplex::shared_cache<Mimi>().get(key, [&] {
      GST_INFO_OBJECT(element, "loading Mimi from %s on %s in %s", s.weights.c_str(), device.str().c_str(),
                      personaplex::dtype_name(dtype).c_str());
      return Mimi::load(s.weights, s.config, device, dtype);
    });
    GST_DEBUG_OBJECT(element, "Mimi %s (use count %ld)", key.c_str(), model.use_count());
    return model;
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(element, RESOURCE, OPEN_READ,
                      ("Could not load Mimi weights \"%s\": %s", s.weights.c_str(), e.what()),
                      ("config \"%s\", device %s", s.config.c_str(), s.device.c_str()));
    return nullptr;
  }
}

bool mimi_model_open_stream(GstElement *element, const MimiModelSettings *settings,
                            std::shared_ptr<const Mimi> *model,
                            std::unique_ptr<personaplex::mimi::MimiState> *state) {
  auto opened = mimi_model_acquire(element, mimi_model_settings_copy(element, settings));
  if (!opened) return false;
  try {
    *state = opened->new_state(1);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(element, RESOURCE, FAILED, ("Could not set up the Mimi stream: %s", e.what()),
                      (nullptr));
    return false;
  }
  *model = std::move(opened);
  return true;
}

GstCaps *mimi_model_codec_caps(const Mimi &model) {
  const gint64 rate = model.sample_rate();
  const gint64 frame_us = model.frame_size() * 1000000 / rate;
  return gst_caps_new_simple("audio/x-mimi",
      "rate", G_TYPE_INT, static_cast<gint>(rate),
      "channels", G_TYPE_INT, 1,
      "frame-duration-us", G_TYPE_INT, static_cast<gint>(frame_us),
      "codebooks", G_TYPE_INT, static_cast<gint>(model.num_codebooks()),
      "codebook-size", G_TYPE_INT, static_cast<gint>(model.codebook_size()),
      nullptr);
}

}  // namespace gstpersonaplex
