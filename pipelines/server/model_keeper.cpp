#include "model_keeper.h"

#include "conversation.h"

namespace ppserver {

ModelKeeper::~ModelKeeper() {
  if (!pipeline_) return;
  gst_element_set_state(pipeline_, GST_STATE_NULL);
  gst_object_unref(pipeline_);
}

bool ModelKeeper::load(const Config &config, std::string *error) {
  GstElement *pp = gst_element_factory_make("personaplex", nullptr);
  if (!pp) {
    *error = "the personaplex element is not installed (or GST_PLUGIN_PATH does not lead to it)";
    return false;
  }
  Conversation defaults;
  defaults.voice = config.voice;
  defaults.prompt = config.prompt;
  configure_personaplex(pp, config, defaults, false);
  pipeline_ = gst_pipeline_new("model");
  gst_bin_add(GST_BIN(pipeline_), pp);
  const gint64 begin = g_get_monotonic_time();
  bool ok = gst_element_set_state(pipeline_, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE;
  ok = ok && gst_element_set_state(pipeline_, GST_STATE_READY) != GST_STATE_CHANGE_FAILURE;
  if (!ok) {
    GstBus *bus = gst_pipeline_get_bus(GST_PIPELINE(pipeline_));
    GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    *error = "the model did not load";
    if (message) {
      GError *e = nullptr;
      gchar *debug = nullptr;
      gst_message_parse_error(message, &e, &debug);
      *error = std::string(e->message) + (debug ? std::string(" (") + debug + ")" : "");
      g_error_free(e);
      g_free(debug);
      gst_message_unref(message);
    }
    gst_object_unref(bus);
    return false;
  }
  g_print("Model loaded in %.1f s\n", (g_get_monotonic_time() - begin) / 1e6);
  return true;
}

}  // namespace ppserver
