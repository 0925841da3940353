/* late-caps-launch CAPS PIPELINE...: runs a pipeline (gst-launch-1.0's
 * words) whose capsfilter named "late" gets CAPS only after the links are
 * made, as a downstream that narrows what it takes after linking does: the
 * elements before it meet the caps at negotiation, not at link time. Prints
 * the first error and exits 1 on one; 0 at EOS. */
#include <gst/gst.h>
#include <stdio.h>

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  if (argc < 3) {
    fprintf(stderr, "usage: late-caps-launch CAPS PIPELINE...\n");
    return 2;
  }
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launchv((const gchar **)argv + 2, &error);
  if (!pipeline || error) {
    fprintf(stderr, "cannot parse: %s\n", error ? error->message : "?");
    return 2;
  }
  GstElement *late = gst_bin_get_by_name(GST_BIN(pipeline), "late");
  if (!late) {
    fprintf(stderr, "no element named late\n");
    return 2;
  }
  GstCaps *caps = gst_caps_from_string(argv[1]);
  g_object_set(late, "caps", caps, NULL);
  gst_caps_unref(caps);
  gst_object_unref(late);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, 120 * GST_SECOND, GST_MESSAGE_ERROR | GST_MESSAGE_EOS);
  int rc = 1;
  if (msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *e = NULL;
    gchar *debug = NULL;
    gst_message_parse_error(msg, &e, &debug);
    printf("ERROR from %s: %s\n(%s)\n", GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), e->message, debug ? debug : "");
    g_error_free(e);
    g_free(debug);
  } else if (msg) {
    rc = 0;
  } else {
    printf("timed out\n");
  }
  if (msg) gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return rc;
}
