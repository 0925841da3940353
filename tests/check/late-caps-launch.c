/* late-caps-launch CAPS PIPELINE...: runs a pipeline (gst-launch-1.0's
 * words) whose capsfilter named "late" gets CAPS only after the links are
 * made, as a downstream that narrows what it takes after linking does: the
 * elements before it meet the caps at negotiation, not at link time (CAPS
 * "-": no such element, the pipeline as it is). Prints the first error and
 * exits 1 on one; 0 at EOS, after printing the caps that the sink pad of
 * an element named "next" ended with ("next caps: ..."), when there is one:
 * what the element before it negotiated, read from the pad itself rather
 * than from gst-launch-1.0 -v's notifications, which can be lost when two
 * pads of one element change caps at once from two threads. */
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
  if (g_strcmp0(argv[1], "-") != 0) {
    GstElement *late = gst_bin_get_by_name(GST_BIN(pipeline), "late");
    if (!late) {
      fprintf(stderr, "no element named late\n");
      return 2;
    }
    GstCaps *caps = gst_caps_from_string(argv[1]);
    g_object_set(late, "caps", caps, NULL);
    gst_caps_unref(caps);
    gst_object_unref(late);
  }
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
    GstElement *next = gst_bin_get_by_name(GST_BIN(pipeline), "next");
    if (next) {
      GstPad *pad = gst_element_get_static_pad(next, "sink");
      GstCaps *caps = pad ? gst_pad_get_current_caps(pad) : NULL;
      gchar *text = caps ? gst_caps_to_string(caps) : g_strdup("none");
      printf("next caps: %s\n", text);
      g_free(text);
      if (caps) gst_caps_unref(caps);
      if (pad) gst_object_unref(pad);
      gst_object_unref(next);
    }
  } else {
    printf("timed out\n");
  }
  if (msg) gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return rc;
}
