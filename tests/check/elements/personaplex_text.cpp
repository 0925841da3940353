// personaplex's text_src: words and subtitle cues on the audio's timeline
// (the engine's grouping of the fixture conversation's pieces), GAPs that
// never go back in time, a text branch without queues, and cues read back
// from a Matroska file.
#include "personaplex_common.h"


using namespace pptest;
using personaplex::text::TextTrackOptions;
using personaplex::text::TextUnit;
using personaplex::text::TimedText;

namespace {

void configure(GstElement *pipeline, const char *name, const char *unit = nullptr) {
  GstElement *pp = gst_bin_get_by_name(GST_BIN(pipeline), name);
  copy_fixture_settings(pp);
  if (unit) gst_util_set_object_arg(G_OBJECT(pp), "text-unit", unit);
  gst_object_unref(pp);
}

GstElement *launch(const std::string &description) {
  GError *error = nullptr;
  GstElement *pipeline = gst_parse_launch(description.c_str(), &error);
  fail_unless(pipeline != nullptr && error == nullptr, "%s", error ? error->message : description.c_str());
  return pipeline;
}

// Plays `pipeline` to its end; false when no EOS came within `timeout`.
bool play_to_eos(GstElement *pipeline, GstClockTime timeout = 60 * GST_SECOND) {
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, timeout, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const bool eos = msg && GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS;
  if (msg && !eos) {
    GError *error = nullptr;
    gst_message_parse_error(msg, &error, nullptr);
    fail_unless(false, "error: %s", error->message);
  }
  if (msg) gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  return eos;
}

// The text items of the fixture conversation through a harness with `unit`.
std::vector<TextItem> converse_text(const char *unit, GstClockTime start) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  gst_util_set_object_arg(G_OBJECT(element), "text-unit", unit);
  GstHarness *h = harness(element);
  GstHarness *text = text_harness(element);
  push_pcm(h, f.user_pcm, 0, f.user_pcm.size(), 1920, start);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  bool eos = false;
  std::vector<TextItem> items = pull_text(text, &eos);
  fail_unless(eos, "no EOS on text_src");
  gst_harness_teardown(text);
  gst_harness_teardown(h);
  gst_object_unref(element);
  return items;
}

// Buffers and GAPs follow each other without overlap or hole, from `start`.
void check_tiled(const std::vector<TextItem> &items, GstClockTime start) {
  GstClockTime at = start;
  for (const TextItem &item : items) {
    fail_unless_equals_uint64(item.pts, at);
    at += item.duration;
  }
}

std::vector<TextItem> buffers_of(const std::vector<TextItem> &items) {
  std::vector<TextItem> out;
  for (const TextItem &item : items)
    if (!item.gap) out.push_back(item);
  return out;
}

void check_same(const std::vector<TextItem> &got, const std::vector<TimedText> &expected) {
  fail_unless_equals_int(got.size(), expected.size());
  for (size_t k = 0; k < got.size(); ++k) {
    fail_unless_equals_string(got[k].text.c_str(), expected[k].text.c_str());
    fail_unless_equals_uint64(got[k].pts, guint64(expected[k].start));
    fail_unless_equals_uint64(got[k].duration, guint64(expected[k].end - expected[k].start));
  }
}

}  // namespace

// The default unit: one buffer per word, from its first piece until the
// next word; nothing special ("<s>") shown.
GST_START_TEST(test_words) {
  const GstClockTime start = 2 * GST_SECOND;
  const std::vector<TextItem> items = converse_text("word", start);
  check_tiled(items, start);
  const std::vector<TextItem> words = buffers_of(items);
  check_same(words, expected_text({}, start));
  fail_unless(words.size() >= 10, "only %zu words", words.size());
  for (const TextItem &w : words) {
    fail_unless(!w.text.empty() && w.text.find_first_of("<> ") == std::string::npos, "shown: \"%s\"", w.text.c_str());
    fail_unless(w.duration >= kFrameDuration);
  }
}
GST_END_TEST;

// Cues: lines of at most 42 characters, two lines, each shown at least
// 1.2 s, the next starting after it.
GST_START_TEST(test_cues) {
  const std::vector<TextItem> items = converse_text("cue", 0);
  check_tiled(items, 0);
  TextTrackOptions cue;
  cue.unit = TextUnit::kCue;
  const std::vector<TextItem> cues = buffers_of(items);
  check_same(cues, expected_text(cue, 0));
  fail_unless(cues.size() >= 2, "only %zu cues", cues.size());
  for (const TextItem &c : cues) {
    fail_unless(c.duration >= 1200 * GST_MSECOND && c.duration <= 6 * GST_SECOND);
    std::istringstream lines(c.text);
    int n = 0;
    for (std::string line; std::getline(lines, line); ++n)
      fail_unless(!line.empty() && line.size() <= 42, "line \"%s\"", line.c_str());
    fail_unless(n >= 1 && n <= 2, "%d lines", n);
  }
}
GST_END_TEST;

// No queue on either branch: both sinks preroll (the text pad pushes from
// its own task) and the file pipeline ends.
GST_START_TEST(test_branches_without_queues) {
  const Fixture &f = fixture();
  const std::string audio = scratch_dir() + "/noqueue.wav", text = scratch_dir() + "/noqueue.txt";
  GstElement *pipeline = launch("filesrc location=" + f.user_wav + " ! wavparse ! personaplex name=pp "
                                "pp.src ! audioconvert ! wavenc ! filesink location=" + audio +
                                " pp.text_src ! filesink location=" + text);
  configure(pipeline, "pp");
  fail_unless(play_to_eos(pipeline), "the pipeline without queues did not end");
  gst_object_unref(pipeline);
  fail_unless(read_file(audio).size() >= 44 + f.out_pcm.size() * 2, "audio file too short");
  std::string words;
  for (const TimedText &w : expected_text({}, 0)) words += w.text;
  const std::string written = read_file(text);
  fail_unless_equals_string(written.c_str(), words.c_str());
}
GST_END_TEST;

// Cues into Matroska and back: every cue readable text, shown >= 1.2 s.
GST_START_TEST(test_cues_in_matroska) {
  const Fixture &f = fixture();
  const std::string mkv = scratch_dir() + "/cues.mkv";
  GstElement *pipeline = launch("filesrc location=" + f.user_wav + " ! wavparse ! personaplex name=pp "
                                "pp.src ! queue ! audioconvert ! opusenc ! mux. "
                                "pp.text_src ! queue ! mux. matroskamux name=mux ! filesink location=" + mkv);
  configure(pipeline, "pp", "cue");
  fail_unless(play_to_eos(pipeline));
  gst_object_unref(pipeline);

  pipeline = launch("filesrc location=" + mkv + " ! matroskademux name=d "
                    "d.subtitle_0 ! queue ! appsink name=subs sync=false d.audio_0 ! queue ! fakesink");
  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  GstElement *subs = gst_bin_get_by_name(GST_BIN(pipeline), "subs");
  TextTrackOptions cue;
  cue.unit = TextUnit::kCue;
  const std::vector<TimedText> expected = expected_text(cue, 0);
  size_t k = 0;
  while (true) {
    GstSample *sample = nullptr;
    g_signal_emit_by_name(subs, "try-pull-sample", 30 * GST_SECOND, &sample);
    if (!sample) break;
    GstBuffer *buffer = gst_sample_get_buffer(sample);
    GstMapInfo map;
    gst_buffer_map(buffer, &map, GST_MAP_READ);
    const std::string text(reinterpret_cast<const char *>(map.data), map.size);
    gst_buffer_unmap(buffer, &map);
    fail_unless(k < expected.size(), "more cues than written");
    fail_unless_equals_string(text.c_str(), expected[k].text.c_str());
    fail_unless(text.find('<') == std::string::npos);
    fail_unless(GST_BUFFER_DURATION(buffer) >= 1200 * GST_MSECOND, "cue %zu shown %" GST_TIME_FORMAT, k,
                GST_TIME_ARGS(GST_BUFFER_DURATION(buffer)));
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), guint64(expected[k].start));
    gst_sample_unref(sample);
    ++k;
  }
  fail_unless_equals_int(k, expected.size());
  gst_object_unref(subs);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}
GST_END_TEST;

static Suite *personaplex_text_suite() {
  Suite *s = suite_create("personaplex-text");
  TCase *tc = tcase_create("text");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_words);
  tcase_add_test(tc, test_cues);
  tcase_add_test(tc, test_branches_without_queues);
  tcase_add_test(tc, test_cues_in_matroska);
  return s;
}

int main(int argc, char **argv) {
  return run_with_fixtures(argc, argv, personaplex_text_suite, "personaplex_text", __FILE__);
}
