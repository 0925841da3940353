// The personaplex plugin: PersonaPlex and its Mimi codec over libtorch.
#include <gst/gst.h>

#include "gstmimidec.h"
#include "gstmimienc.h"
#include "gstpersonaplex.h"
#include "gstcxxruntime.h"
#include "gstpersonaplexenums.h"

GST_DEBUG_CATEGORY_STATIC(personaplex_plugin_debug);
#define GST_CAT_DEFAULT personaplex_plugin_debug

static gboolean plugin_init(GstPlugin *plugin) {
  GST_DEBUG_CATEGORY_INIT(personaplex_plugin_debug, "personaplexplugin", 0, "personaplex plugin");
  for (const std::string &path : gstpersonaplex::cxx_runtime_to_global_scope())
    GST_DEBUG("in the global scope: %s", path.c_str());
  // Documented with the elements whose properties they type.
  gst_type_mark_as_plugin_api(GST_TYPE_PERSONAPLEX_TEXT_UNIT, GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(GST_TYPE_PERSONAPLEX_DTYPE, GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(GST_TYPE_PERSONAPLEX_CODEC_DTYPE, GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(GST_TYPE_PERSONAPLEX_WEIGHT_FORMAT, GstPluginAPIFlags(0));
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER(mimienc, plugin);
  ret |= GST_ELEMENT_REGISTER(mimidec, plugin);
  ret |= GST_ELEMENT_REGISTER(personaplex, plugin);
  return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, personaplex,
                  "NVIDIA PersonaPlex full-duplex speech model and the Mimi neural codec",
                  plugin_init, VERSION, "MIT/X11", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
