// The personaplex plugin: PersonaPlex and its Mimi codec over libtorch.
#include <gst/gst.h>

#include "gstmimidec.h"
#include "gstmimienc.h"
#include "gstpersonaplex.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER(mimienc, plugin);
  ret |= GST_ELEMENT_REGISTER(mimidec, plugin);
  ret |= GST_ELEMENT_REGISTER(personaplex, plugin);
  return ret;
}

GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, personaplex,
                  "NVIDIA PersonaPlex full-duplex speech model and the Mimi neural codec",
                  plugin_init, VERSION, "MIT/X11", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
