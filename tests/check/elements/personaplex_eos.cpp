// personaplex, live with nothing upstream (is-live, sink pad unlinked): EOS
// sent to the pipeline, as gst-launch-1.0 -e does on Ctrl-C, ends the
// conversation; muxers finalize their files within a second.
#include "personaplex_common.h"


using namespace pptest;

namespace {

GstElement *launch(const std::string &description) {
  GError *error = nullptr;
  GstElement *pipeline = gst_parse_launch(description.c_str(), &error);
  fail_unless(pipeline != nullptr && error == nullptr, "%s", error ? error->message : description.c_str());
  GstElement *pp = gst_bin_get_by_name(GST_BIN(pipeline), "pp");
  copy_fixture_settings(pp);
  g_object_set(pp, "is-live", TRUE, nullptr);
  gst_object_unref(pp);
  return pipeline;
}

// Runs `pipeline` about a second, sends it EOS and waits for the EOS
// message: how long that took.
GstClockTime run_then_eos(GstElement *pipeline) {
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *error = gst_bus_timed_pop_filtered(bus, GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless(error == nullptr, "error while running");
  const gint64 sent = g_get_monotonic_time();
  fail_unless(gst_element_send_event(pipeline, gst_event_new_eos()), "EOS refused");
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const GstClockTime took = (g_get_monotonic_time() - sent) * GST_USECOND;
  fail_unless(msg != nullptr, "no EOS message 10 s after EOS was sent");
  fail_unless_equals_int(GST_MESSAGE_TYPE(msg), GST_MESSAGE_EOS);
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  return took;
}

guint32 le32(const std::string &b, size_t at) {
  return guint32(guint8(b[at])) | guint32(guint8(b[at + 1])) << 8 | guint32(guint8(b[at + 2])) << 16 |
         guint32(guint8(b[at + 3])) << 24;
}

}  // namespace

GST_START_TEST(test_eos_finalizes_wav) {
  const std::string path = scratch_dir() + "/live.wav";
  GstElement *pipeline = launch("personaplex name=pp ! queue ! wavenc ! filesink location=" + path);
  const GstClockTime took = run_then_eos(pipeline);
  gst_object_unref(pipeline);
  fail_unless(took < GST_SECOND, "EOS took %" GST_TIME_FORMAT, GST_TIME_ARGS(took));
  // The header was rewritten: RIFF and data sizes match the file.
  const std::string wav = read_file(path);
  fail_unless(wav.size() > 44 && wav.compare(0, 4, "RIFF") == 0);
  fail_unless_equals_int(le32(wav, 4), wav.size() - 8);
  size_t at = 12;
  while (at + 8 <= wav.size() && wav.compare(at, 4, "data") != 0) at += 8 + le32(wav, at + 4);
  fail_unless(at + 8 <= wav.size(), "no data chunk");
  const guint32 bytes = le32(wav, at + 4);
  fail_unless_equals_int(bytes, wav.size() - at - 8);
  // Whole frames of F32 samples, about a second of them.
  fail_unless_equals_int(bytes % (kFrame * 4), 0);
  const size_t frames = bytes / (kFrame * 4);
  fail_unless(frames >= 5 && frames <= 40, "%zu frames", frames);
}
GST_END_TEST;

GST_START_TEST(test_eos_finalizes_matroska) {
  const std::string path = scratch_dir() + "/live.mkv";
  GstElement *pipeline = launch("personaplex name=pp pp.src ! queue ! audioconvert ! opusenc ! mux. "
                                "pp.text_src ! queue ! mux. matroskamux name=mux ! filesink location=" + path);
  const GstClockTime took = run_then_eos(pipeline);
  gst_object_unref(pipeline);
  fail_unless(took < GST_SECOND, "EOS took %" GST_TIME_FORMAT, GST_TIME_ARGS(took));
  // It parses, and says how long it is.
  GError *error = nullptr;
  pipeline = gst_parse_launch(("filesrc location=" + path + " ! matroskademux ! fakesink").c_str(), &error);
  fail_unless(pipeline && !error);
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  fail_unless_equals_int(gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND), GST_STATE_CHANGE_SUCCESS);
  gint64 duration = -1;
  fail_unless(gst_element_query_duration(pipeline, GST_FORMAT_TIME, &duration));
  fail_unless(duration >= gint64(400 * GST_MSECOND) && duration <= gint64(4 * GST_SECOND),
              "duration %" GST_TIME_FORMAT, GST_TIME_ARGS(duration));
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}
GST_END_TEST;

static Suite *personaplex_eos_suite() {
  Suite *s = suite_create("personaplex-eos");
  TCase *tc = tcase_create("eos");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_eos_finalizes_wav);
  tcase_add_test(tc, test_eos_finalizes_matroska);
  return s;
}

int main(int argc, char **argv) {
  return run_with_fixtures(argc, argv, personaplex_eos_suite, "personaplex_eos", __FILE__);
}
