// personaplex, live: paced by a test clock, one frame of output per frame
// of clock with or without input, latency, falling behind, flushing, EOS and
// stopping while the task waits.
#include "personaplex_common.h"

using namespace pptest;

namespace {

// A live element with only its src pad in a harness (the sink pad unlinked).
GstHarness *unlinked_harness(GstElement *element) {
  g_object_set(element, "is-live", TRUE, nullptr);
  return gst_harness_new_with_element(element, nullptr, "src");
}

// Lets the task's next clock wait pass; the frame it then pushes.
GstBuffer *crank_and_pull(GstHarness *h) {
  fail_unless(gst_harness_crank_single_clock_wait(h));
  GstBuffer *buffer = gst_harness_pull(h);
  fail_unless(buffer != nullptr);
  return buffer;
}

}  // namespace

// Without input the element still speaks, one 80 ms frame per 80 ms of clock.
GST_START_TEST(test_paced_without_input) {
  GstElement *element = make_element();
  GstHarness *h = unlinked_harness(element);
  GstTestClock *clock = gst_harness_get_testclock(h);
  for (guint64 k = 0; k < 5; ++k) {
    GstBuffer *buffer = crank_and_pull(h);
    fail_unless_equals_uint64(gst_clock_get_time(GST_CLOCK(clock)), (k + 1) * kFrameDuration);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), k * kFrameDuration);
    fail_unless_equals_uint64(GST_BUFFER_DURATION(buffer), kFrameDuration);
    fail_unless_equals_int(gst_buffer_get_size(buffer), kFrame * 4);
    fail_unless_equals_int(GST_BUFFER_IS_DISCONT(buffer), k == 0);
    gst_buffer_unref(buffer);
  }
  fail_unless_equals_int(gst_harness_buffers_received(h), 5);
  gst_object_unref(clock);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// Input arriving in time gives the offline conversation, frame for frame.
GST_START_TEST(test_live_input_gives_the_reference) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element, true);  // a live upstream: live mode without is-live
  std::vector<float> out;
  for (size_t k = 0; k < 12; ++k) {
    push_pcm(h, f.user_pcm, k * kFrame, kFrame, 960, k * kFrameDuration);
    GstBuffer *buffer = crank_and_pull(h);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), k * kFrameDuration);
    auto part = f32_of(buffer);
    out.insert(out.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  fail_unless(max_diff(out, frames_of(f.out_pcm, 0, 12)) < 1e-4);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// A muted peer: frames without input are silence in, and counted.
GST_START_TEST(test_missing_input_becomes_silence) {
  const Fixture &f = fixture();
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = harness(element, true);
  GstHarness *text = text_harness(element);
  std::vector<float> out;
  for (size_t k = 0; k < 13; ++k) {
    if (k < 4) push_pcm(h, f.user_pcm, k * kFrame, kFrame, kFrame, k * kFrameDuration);
    GstBuffer *buffer = crank_and_pull(h);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), k * kFrameDuration);
    auto part = f32_of(buffer);
    out.insert(out.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  fail_unless(max_diff(frames_of(out, 0, 4), frames_of(f.out_pcm, 0, 4)) < 1e-4);
  // Posted after the 13th frame's word or GAP went out.
  GstStructure *stats = pop_element_message(bus, "personaplex-stats", 10 * GST_SECOND);
  fail_unless(stats != nullptr, "no stats after 13 frames");
  guint64 processed = 0, silence = 0;
  gboolean live = FALSE;
  fail_unless(gst_structure_get_uint64(stats, "frames-processed", &processed));
  fail_unless(gst_structure_get_uint64(stats, "silence-frames", &silence));
  fail_unless(gst_structure_get_boolean(stats, "live", &live));
  fail_unless_equals_uint64(processed, 13);
  fail_unless_equals_uint64(silence, 9);
  fail_unless(live);
  gst_structure_free(stats);
  // The text pad kept time too: one word or GAP per frame.
  std::vector<TextItem> items = pull_text(text, nullptr, 13);
  fail_unless_equals_int(items.size(), 13);
  for (size_t k = 0; k < items.size(); ++k) fail_unless_equals_uint64(items[k].pts, k * kFrameDuration);
  gst_harness_teardown(text);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

GST_START_TEST(test_latency_query) {
  GstElement *element = make_element();
  GstHarness *h = unlinked_harness(element);
  GstQuery *query = gst_query_new_latency();
  fail_unless(gst_pad_peer_query(h->sinkpad, query));
  gboolean live = FALSE;
  GstClockTime min = 0, max = 0;
  gst_query_parse_latency(query, &live, &min, &max);
  fail_unless(live);
  fail_unless_equals_uint64(min, kFrameDuration + 80 * GST_MSECOND);
  fail_unless(max >= min);
  gst_query_unref(query);

  g_object_set(element, "latency", guint64(20 * GST_MSECOND), nullptr);
  fail_unless_equals_uint64(gst_harness_query_latency(h), kFrameDuration + 20 * GST_MSECOND);
  gst_harness_teardown(h);
  gst_object_unref(element);

  // Behind a live upstream: its latency plus ours.
  element = make_element();
  h = harness(element, true);
  gst_harness_set_upstream_latency(h, 30 * GST_MSECOND);
  fail_unless_equals_uint64(gst_harness_query_latency(h), 30 * GST_MSECOND + kFrameDuration + 80 * GST_MSECOND);
  gst_harness_teardown(h);
  gst_object_unref(element);

  // Not live: nothing to add.
  element = make_element();
  h = harness(element, false);
  query = gst_query_new_latency();
  fail_unless(gst_pad_peer_query(h->sinkpad, query));
  gst_query_parse_latency(query, &live, &min, &max);
  fail_unless(!live);
  gst_query_unref(query);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// A clock far past the deadline: the slots that cannot be made are skipped
// (a GAP), a warning is posted and the stats count them.
GST_START_TEST(test_falling_behind_skips_and_warns) {
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = unlinked_harness(element);
  GstTestClock *clock = gst_harness_get_testclock(h);
  gst_buffer_unref(crank_and_pull(h));  // slot 0, on time
  gst_test_clock_wait_for_next_pending_id(clock, nullptr);  // slot 0 done, slot 1 waiting
  gst_test_clock_set_time(clock, GST_SECOND);  // slot 1 was due at 160 ms
  fail_unless(gst_harness_crank_single_clock_wait(h));  // slot 1's wait: too late
  GstBuffer *buffer = crank_and_pull(h);                 // slot 11's
  // Slots 1-10 skipped: 1 s is within the budget of slot 11 (due 960 ms).
  fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), 11 * kFrameDuration);
  fail_unless(GST_BUFFER_IS_DISCONT(buffer));
  gst_buffer_unref(buffer);
  bool gap = false;
  while (GstEvent *event = gst_harness_try_pull_event(h)) {
    if (GST_EVENT_TYPE(event) == GST_EVENT_GAP) {
      GstClockTime pts, duration;
      gst_event_parse_gap(event, &pts, &duration);
      fail_unless_equals_uint64(pts, kFrameDuration);
      fail_unless_equals_uint64(duration, 10 * kFrameDuration);
      gap = true;
    }
    gst_event_unref(event);
  }
  fail_unless(gap, "no GAP for the skipped frames");
  const std::string warning = pop_message(bus, GST_MESSAGE_WARNING);
  fail_unless(warning.find("behind") != std::string::npos, "warning: %s", warning.c_str());
  fail_unless(pop_message(bus, GST_MESSAGE_WARNING).empty(), "one warning per burst");

  for (int k = 0; k < 12; ++k) gst_buffer_unref(crank_and_pull(h));
  GstStructure *stats = pop_element_message(bus, "personaplex-stats", 10 * GST_SECOND);
  fail_unless(stats != nullptr);
  guint64 skipped = 0, late = 0;
  fail_unless(gst_structure_get_uint64(stats, "frames-skipped", &skipped));
  fail_unless(gst_structure_get_uint64(stats, "frames-late", &late));
  fail_unless_equals_uint64(skipped, 10);
  fail_unless_equals_uint64(late, 1);
  gst_structure_free(stats);
  gst_object_unref(clock);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

// A flush restarts the conversation and the live timeline.
GST_START_TEST(test_live_flush_restarts) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element, true);
  GstTestClock *clock = gst_harness_get_testclock(h);
  std::vector<float> first, again;
  for (size_t k = 0; k < 3; ++k) {
    push_pcm(h, f.user_pcm, k * kFrame, kFrame, kFrame, k * kFrameDuration);
    GstBuffer *buffer = crank_and_pull(h);
    auto part = f32_of(buffer);
    first.insert(first.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_start()));
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  fail_unless(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  const GstClockTime restart = gst_clock_get_time(GST_CLOCK(clock));
  for (size_t k = 0; k < 3; ++k) {
    push_pcm(h, f.user_pcm, k * kFrame, kFrame, kFrame, restart + k * kFrameDuration);
    GstBuffer *buffer = crank_and_pull(h);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), restart + k * kFrameDuration);
    auto part = f32_of(buffer);
    again.insert(again.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  fail_unless(max_diff(first, again) == 0.0);
  gst_object_unref(clock);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// EOS from upstream: the queued frames, then EOS on both pads.
GST_START_TEST(test_live_eos) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element, true);
  GstHarness *text = text_harness(element);
  push_pcm(h, f.user_pcm, 0, kFrame, kFrame);
  gst_buffer_unref(crank_and_pull(h));
  push_pcm(h, f.user_pcm, kFrame, kFrame + 100, kFrame + 100, kFrameDuration);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  gst_buffer_unref(crank_and_pull(h));
  GstBuffer *last = crank_and_pull(h);  // the 100 samples left
  fail_unless_equals_int(gst_buffer_get_size(last), 100 * 4);
  gst_buffer_unref(last);
  // The task sends EOS at its next slot.
  fail_unless(gst_harness_crank_single_clock_wait(h));
  GstEvent *event;
  bool eos = false;
  while (!eos && (event = gst_harness_pull_event(h))) {
    eos = GST_EVENT_TYPE(event) == GST_EVENT_EOS;
    gst_event_unref(event);
  }
  fail_unless(eos);
  bool text_eos = false;
  while (!text_eos && (event = gst_harness_pull_event(text))) {
    text_eos = GST_EVENT_TYPE(event) == GST_EVENT_EOS;
    gst_event_unref(event);
  }
  fail_unless(text_eos);
  gst_harness_teardown(text);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// An error in the task: posted, EOS downstream, and upstream told.
GST_START_TEST(test_live_error) {
  const Fixture &f = fixture();
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = harness(element, true);
  push_pcm(h, f.user_pcm, 0, kFrame, kFrame);
  gst_buffer_unref(crank_and_pull(h));
  g_object_set(element, "voice", "a/b", nullptr);
  g_signal_emit_by_name(element, "reset");
  fail_unless(gst_harness_crank_single_clock_wait(h));
  GstEvent *event;
  bool eos = false;
  while (!eos && (event = gst_harness_pull_event(h))) {
    eos = GST_EVENT_TYPE(event) == GST_EVENT_EOS;
    gst_event_unref(event);
  }
  fail_unless(eos, "no EOS after the error");
  GError *error = nullptr;
  const std::string text = pop_message(bus, GST_MESSAGE_ERROR, &error);
  fail_unless(error && error->domain == GST_RESOURCE_ERROR, "error: %s", text.c_str());
  g_error_free(error);
  fail_unless_equals_int(gst_harness_push(h, f32_buffer(f.user_pcm.data(), kFrame, kFrameDuration)),
                         GST_FLOW_ERROR);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

// Stopping while the task waits on the clock, paused or playing, returns.
GST_START_TEST(test_stop_while_waiting) {
  GstElement *element = make_element();
  for (int cycle = 0; cycle < 3; ++cycle) {
    GstHarness *h = unlinked_harness(element);
    gst_buffer_unref(crank_and_pull(h));
    GstTestClock *clock = gst_harness_get_testclock(h);
    gst_test_clock_wait_for_next_pending_id(clock, nullptr);  // waiting for slot 1
    if (cycle == 1) {
      fail_unless_equals_int(gst_element_set_state(element, GST_STATE_PAUSED), GST_STATE_CHANGE_NO_PREROLL);
      fail_unless_equals_int(gst_element_set_state(element, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
      gst_buffer_unref(crank_and_pull(h));
    }
    gst_object_unref(clock);
    gst_harness_teardown(h);  // to NULL while waiting
  }
  gst_object_unref(element);
}
GST_END_TEST;

// Two live elements in one batch (batch-size 2), on clocks of the same
// phase: each gets the conversation it gets alone, frame for frame, on the
// frame grid of its clock.
GST_START_TEST(test_live_batched_elements) {
  const Fixture &f = fixture();
  GstBus *bus_b = gst_bus_new();
  GstElement *a = make_element(), *b = make_element(bus_b);
  g_object_set(a, "batch-size", 2u, nullptr);
  g_object_set(b, "batch-size", 2u, nullptr);
  GstHarness *ha = harness(a, true), *hb = harness(b, true);
  std::vector<float> out_a, out_b;
  for (size_t k = 0; k < 12; ++k) {
    push_pcm(ha, f.user_pcm, k * kFrame, kFrame, 960, k * kFrameDuration);
    push_pcm(hb, f.user_pcm, k * kFrame, kFrame, 1920, k * kFrameDuration);
    for (auto [h, out] : {std::make_pair(ha, &out_a), std::make_pair(hb, &out_b)}) {
      GstBuffer *buffer = crank_and_pull(h);
      fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), k * kFrameDuration);
      auto part = f32_of(buffer);
      out->insert(out->end(), part.begin(), part.end());
      gst_buffer_unref(buffer);
    }
  }
  fail_unless(max_diff(out_a, frames_of(f.out_pcm, 0, 12)) < 1e-4);
  fail_unless(max_diff(out_b, frames_of(f.out_pcm, 0, 12)) < 1e-4);
  // The second element's prompts are the first's: the batch's cache gave them.
  GstStructure *started = pop_element_message(bus_b, "personaplex-started");
  fail_unless(started != nullptr, "no started message");
  fail_unless_equals_string(gst_structure_get_string(started, "from-cache"), "prompts");
  gst_structure_free(started);
  gst_harness_teardown(ha);
  gst_harness_teardown(hb);
  gst_object_unref(a);
  gst_object_unref(b);
  release_bus(bus_b);
}
GST_END_TEST;

static Suite *personaplex_live_suite() {
  Suite *s = suite_create("personaplex-live");
  TCase *tc = tcase_create("live");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_paced_without_input);
  tcase_add_test(tc, test_live_input_gives_the_reference);
  tcase_add_test(tc, test_live_batched_elements);
  tcase_add_test(tc, test_missing_input_becomes_silence);
  tcase_add_test(tc, test_latency_query);
  tcase_add_test(tc, test_falling_behind_skips_and_warns);
  tcase_add_test(tc, test_live_flush_restarts);
  tcase_add_test(tc, test_live_eos);
  tcase_add_test(tc, test_live_error);
  tcase_add_test(tc, test_stop_while_waiting);
  return s;
}

int main(int argc, char **argv) {
  return run_with_fixtures(argc, argv, personaplex_live_suite, "personaplex_live", __FILE__);
}
