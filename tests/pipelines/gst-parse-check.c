/* gst-parse-check [gst-launch-1.0 options] PIPELINE...: parses a pipeline
 * from the same argument words gst-launch-1.0 takes, without starting it:
 * every element must exist, every property be known and every link that
 * can be made before data flows be made. Prints the element factories used,
 * one per line. Exits 0 on success, 1 on a parse error.
 *
 * The pipeline scripts run it in place of gst-launch-1.0
 * (PERSONAPLEX_GST_LAUNCH), so their exact pipelines are checked where no
 * sound card or network is at hand. */
#include <gst/gst.h>
#include <stdio.h>
#include <string.h>

static void print_factories(GstBin *bin) {
  GstIterator *it = gst_bin_iterate_recurse(bin);
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElementFactory *factory = gst_element_get_factory(GST_ELEMENT(g_value_get_object(&item)));
    if (factory) printf("%s\n", GST_OBJECT_NAME(factory));
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  int first = 1;
  /* gst-launch-1.0's own flags (-q, -e, -v, ...) are not part of the pipeline. */
  while (first < argc && argv[first][0] == '-' && argv[first][1] != '\0') first++;
  if (first >= argc) {
    fprintf(stderr, "usage: gst-parse-check [-q] [-e] PIPELINE...\n");
    return 2;
  }
  GstParseContext *ctx = gst_parse_context_new();
  GError *error = NULL;
  GstElement *pipeline =
      gst_parse_launchv_full((const gchar **)(argv + first), ctx, GST_PARSE_FLAG_FATAL_ERRORS, &error);
  if (!pipeline || error) {
    gchar **missing = gst_parse_context_get_missing_elements(ctx);
    fprintf(stderr, "gst-parse-check: %s\n", error ? error->message : "no pipeline");
    for (gchar **m = missing; m && *m; m++) fprintf(stderr, "gst-parse-check: missing element %s\n", *m);
    g_strfreev(missing);
    g_clear_error(&error);
    if (pipeline) gst_object_unref(pipeline);
    gst_parse_context_free(ctx);
    return 1;
  }
  if (GST_IS_BIN(pipeline)) print_factories(GST_BIN(pipeline));
  gst_object_unref(pipeline);
  gst_parse_context_free(ctx);
  return 0;
}
