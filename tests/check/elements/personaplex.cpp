// personaplex, offline (non-live upstream): the reference conversation
// through a pipeline and a harness, timestamps and length, formats, words on
// text_src, restarts, shared models, errors and state changes.
#include "personaplex_common.h"

#include <cmath>
#include <fstream>
#include <thread>

using namespace pptest;

namespace {

// Pulls every sample of appsink `name` until EOS (or 60 s without one).
std::vector<GstSample *> pull_samples(GstElement *pipeline, const char *name) {
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), name);
  std::vector<GstSample *> samples;
  GstSample *sample = nullptr;
  while (true) {
    g_signal_emit_by_name(sink, "try-pull-sample", 60 * GST_SECOND, &sample);
    if (!sample) break;
    samples.push_back(sample);
  }
  gboolean eos = FALSE;
  g_object_get(sink, "eos", &eos, nullptr);
  fail_unless(eos, "appsink %s got no EOS", name);
  gst_object_unref(sink);
  return samples;
}

std::string text_of(GstBuffer *buffer) {
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_READ);
  std::string text(reinterpret_cast<const char *>(map.data), map.size);
  gst_buffer_unmap(buffer, &map);
  return text;
}

// The fixture conversation through `element` in a non-live harness: the
// whole user audio in buffers of `chunk` samples from `start`, then EOS.
std::vector<float> converse(GstHarness *h, size_t chunk = 1000, GstClockTime start = 0) {
  const Fixture &f = fixture();
  push_pcm(h, f.user_pcm, 0, f.user_pcm.size(), chunk, start);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  return pull_all_f32(h);
}

// Starting `element` fails with an error in `domain`/`code` naming `needle`.
void expect_start_failure(GstElement *element, GstBus *bus, GQuark domain, gint code, const std::string &needle) {
  fail_unless_equals_int(gst_element_set_state(element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GError *error = nullptr;
  const std::string text = pop_message(bus, GST_MESSAGE_ERROR, &error);
  fail_unless(error != nullptr, "no error message posted");
  fail_unless(error->domain == domain && error->code == code, "unexpected error: %s", text.c_str());
  fail_unless(text.find(needle) != std::string::npos, "error \"%s\" does not name \"%s\"", text.c_str(),
              needle.c_str());
  g_error_free(error);
  gst_element_set_state(element, GST_STATE_NULL);
}

void expect_start_failure(const char *property, const char *value, GQuark domain, gint code,
                          const std::string &needle) {
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  gst_util_set_object_arg(G_OBJECT(element), property, value);
  expect_start_failure(element, bus, domain, code, needle);
  gst_object_unref(element);
  release_bus(bus);
}

}  // namespace

GST_START_TEST(test_pipeline_reproduces_reference) {
  const Fixture &f = fixture();
  GstElement *pipeline = gst_parse_launch(
      "filesrc name=in ! wavparse ! personaplex name=pp "
      "pp.src ! queue ! appsink name=audio sync=false "
      "pp.text_src ! queue ! appsink name=text sync=false",
      nullptr);
  fail_unless(pipeline != nullptr);
  GstElement *in = gst_bin_get_by_name(GST_BIN(pipeline), "in");
  g_object_set(in, "location", f.user_wav.c_str(), nullptr);
  gst_object_unref(in);
  GstElement *pp = gst_bin_get_by_name(GST_BIN(pipeline), "pp");
  GstElement *configured = make_element();  // the fixture's settings, copied over
  for (const char *name : {"lm-weights", "lm-config", "mimi-weights", "mimi-config", "tokenizer", "voice",
                           "prompt", "greedy", "device", "dtype", "text-unit"}) {
    GValue value = G_VALUE_INIT;
    g_object_get_property(G_OBJECT(configured), name, &value);
    g_object_set_property(G_OBJECT(pp), name, &value);
    g_value_unset(&value);
  }
  gst_object_unref(configured);
  gst_object_unref(pp);

  fail_unless(gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  std::vector<float> pcm;
  GstClockTime expected_pts = 0;
  for (GstSample *sample : pull_samples(pipeline, "audio")) {
    GstBuffer *buffer = gst_sample_get_buffer(sample);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), expected_pts);
    expected_pts += GST_BUFFER_DURATION(buffer);
    auto part = f32_of(buffer);
    pcm.insert(pcm.end(), part.begin(), part.end());
    gst_sample_unref(sample);
  }
  fail_unless_equals_int(pcm.size(), f.out_pcm.size());
  fail_unless(max_diff(pcm, f.out_pcm) < 1e-4, "output differs from the reference by %g", max_diff(pcm, f.out_pcm));

  std::vector<std::string> words;
  GstClockTime last = 0;
  for (GstSample *sample : pull_samples(pipeline, "text")) {
    GstBuffer *buffer = gst_sample_get_buffer(sample);
    words.push_back(text_of(buffer));
    fail_unless(words.size() == 1 || GST_BUFFER_PTS(buffer) > last, "word timestamps must increase");
    last = GST_BUFFER_PTS(buffer);
    gst_sample_unref(sample);
  }
  fail_unless(words == f.words, "words differ from the reference's");

  GstBus *bus = gst_element_get_bus(pipeline);
  // Progress messages, then EOS: the last one says all of the input, and how fast.
  GstStructure *progress = nullptr;
  bool eos = false;
  while (GstMessage *msg = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND,
                                                      GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ELEMENT))) {
    eos = GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS;
    const GstStructure *s = gst_message_get_structure(msg);
    if (s && gst_structure_has_name(s, "personaplex-progress")) {
      if (progress) gst_structure_free(progress);
      progress = gst_structure_copy(s);
    }
    gst_message_unref(msg);
    if (eos) break;
  }
  fail_unless(eos, "no EOS on the bus");
  fail_unless(progress != nullptr, "no progress message");
  gboolean final = FALSE;
  gdouble percent = 0, rtf = 0, elapsed = -1;
  guint64 position = 0, duration = 0;
  fail_unless(gst_structure_get_boolean(progress, "final", &final) && final);
  fail_unless(gst_structure_get_double(progress, "percent", &percent) &&
              gst_structure_get_double(progress, "realtime-factor", &rtf) &&
              gst_structure_get_double(progress, "elapsed", &elapsed));
  fail_unless(gst_structure_get_uint64(progress, "position", &position) &&
              gst_structure_get_uint64(progress, "duration", &duration));
  fail_unless_equals_uint64(position, duration);
  fail_unless(percent > 99.9 && percent <= 100.0, "percent %g", percent);
  fail_unless(rtf > 0 && elapsed > 0);
  gst_structure_free(progress);
  release_bus(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}
GST_END_TEST;

GST_START_TEST(test_timestamps_follow_input) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  const GstClockTime start = GST_SECOND;
  std::vector<GstBuffer *> out;
  push_pcm(h, f.user_pcm, 0, f.user_pcm.size(), 1000, start);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  std::vector<float> pcm = pull_all_f32(h, &out);
  fail_unless_equals_int(out.size(), 24);
  for (size_t k = 0; k < out.size(); ++k) {
    fail_unless_equals_uint64(GST_BUFFER_PTS(out[k]), start + k * kFrameDuration);
    fail_unless_equals_uint64(GST_BUFFER_DURATION(out[k]), kFrameDuration);
    gst_buffer_unref(out[k]);
  }
  fail_unless(max_diff(pcm, f.out_pcm) < 1e-4);
  fail_unless(received_event(h, GST_EVENT_EOS));
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// At EOS the partial frame is padded, and the output cut to the input's length.
GST_START_TEST(test_output_has_input_length) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  const size_t n = 5 * kFrame + 700;
  std::vector<GstBuffer *> out;
  push_pcm(h, f.user_pcm, 0, n, 960);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  std::vector<float> pcm = pull_all_f32(h, &out);
  fail_unless_equals_int(pcm.size(), n);
  fail_unless_equals_int(out.size(), 6);
  fail_unless_equals_uint64(GST_BUFFER_PTS(out[5]), 5 * kFrameDuration);
  fail_unless_equals_uint64(GST_BUFFER_DURATION(out[5]), gst_util_uint64_scale_int(700, GST_SECOND, kRate));
  for (GstBuffer *b : out) gst_buffer_unref(b);
  fail_unless(max_diff(frames_of(pcm, 0, 5), frames_of(f.out_pcm, 0, 5)) < 1e-4);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// A GAP in the input is heard as silence: the output stays aligned and is
// what explicit zeros would give.
GST_START_TEST(test_input_gap_is_silence) {
  const Fixture &f = fixture();
  std::vector<float> with_zeros = frames_of(f.user_pcm, 0, 2);
  with_zeros.resize(4 * kFrame, 0.0f);
  auto tail = frames_of(f.user_pcm, 4, 2);
  with_zeros.insert(with_zeros.end(), tail.begin(), tail.end());
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  push_pcm(h, with_zeros, 0, with_zeros.size(), kFrame);
  std::vector<float> expected = pull_all_f32(h);
  gst_harness_teardown(h);
  gst_object_unref(element);

  element = make_element();
  h = harness(element);
  push_pcm(h, f.user_pcm, 0, 2 * kFrame, kFrame);
  fail_unless(gst_harness_push_event(h, gst_event_new_gap(2 * kFrameDuration, 2 * kFrameDuration)));
  push_pcm(h, f.user_pcm, 4 * kFrame, 2 * kFrame, kFrame, 4 * kFrameDuration);
  std::vector<GstBuffer *> out;
  std::vector<float> pcm = pull_all_f32(h, &out);
  fail_unless_equals_int(out.size(), 6);
  for (size_t k = 0; k < out.size(); ++k) {
    fail_unless_equals_uint64(GST_BUFFER_PTS(out[k]), k * kFrameDuration);
    gst_buffer_unref(out[k]);
  }
  fail_unless(max_diff(pcm, expected) == 0.0);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// S16 in gives S16 out; a downstream that only takes F32 gets F32.
GST_START_TEST(test_output_format) {
  const Fixture &f = fixture();
  for (bool f32_only : {false, true}) {
    GstElement *element = make_element();
    GstHarness *h = harness(element);
    gst_harness_set_src_caps_str(h, kCapsS16);
    if (f32_only) gst_harness_set_sink_caps_str(h, kCapsF32);
    fail_unless_equals_int(gst_harness_push(h, s16_buffer(f.user_pcm.data(), 2 * kFrame, 0)), GST_FLOW_OK);
    fail_unless_equals_int(gst_harness_buffers_received(h), 2);
    GstCaps *caps = gst_pad_get_current_caps(h->sinkpad);
    GstCaps *expected = gst_caps_from_string(f32_only ? kCapsF32 : kCapsS16);
    fail_unless(gst_caps_is_equal(caps, expected), "caps %" GST_PTR_FORMAT, caps);
    GstBuffer *buffer = gst_harness_pull(h);
    fail_unless_equals_int(gst_buffer_get_size(buffer), kFrame * (f32_only ? 4 : 2));
    gst_buffer_unref(buffer);
    gst_caps_unref(caps);
    gst_caps_unref(expected);
    gst_harness_teardown(h);
    gst_object_unref(element);
  }
}
GST_END_TEST;

// One buffer per word on the audio's timeline, a GAP for every other frame,
// EOS at the end; an element message per word.
GST_START_TEST(test_words_and_gaps) {
  const Fixture &f = fixture();
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = harness(element);
  GstHarness *text = text_harness(element);
  const GstClockTime start = 3 * GST_SECOND;
  converse(h, 1920, start);
  bool eos = false;
  std::vector<TextItem> items = pull_text(text, &eos);
  fail_unless(eos, "no EOS on text_src");
  fail_unless_equals_int(items.size(), f.has_word.size());
  std::vector<std::string> words;
  for (size_t k = 0; k < items.size(); ++k) {
    fail_unless_equals_uint64(items[k].pts, start + k * kFrameDuration);
    fail_unless_equals_uint64(items[k].duration, kFrameDuration);
    fail_unless_equals_int(items[k].gap, !f.has_word[k]);
    if (!items[k].gap) words.push_back(items[k].text);
  }
  fail_unless(words == f.words);

  // The messages carry words, whatever the pad carries.
  const auto expected = expected_text({}, start, true);
  fail_unless(!expected.empty());
  for (size_t k = 0; k < expected.size(); ++k) {
    GstStructure *s = pop_element_message(bus, "personaplex-word");
    fail_unless(s != nullptr, "word message %zu missing", k);
    fail_unless_equals_string(gst_structure_get_string(s, "text"), expected[k].text.c_str());
    guint64 pts = 0, duration = 0;
    gint64 step = -1;
    fail_unless(gst_structure_get_uint64(s, "pts", &pts) && gst_structure_get_int64(s, "step", &step) &&
                gst_structure_get_uint64(s, "duration", &duration));
    fail_unless_equals_uint64(pts, start + guint64(step) * kFrameDuration);
    fail_unless_equals_uint64(pts, guint64(expected[k].start));
    fail_unless_equals_uint64(duration, guint64(expected[k].end - expected[k].start));
    gst_structure_free(s);
  }
  gst_harness_teardown(text);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

GST_START_TEST(test_stats_messages) {
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = harness(element);
  converse(h);
  // The start: its prompts run here (no batch, no prompt cache).
  GstStructure *started = pop_element_message(bus, "personaplex-started");
  fail_unless(started != nullptr, "no started message");
  gint64 prompt_steps = 0;
  gdouble prompts_ms = -1;
  fail_unless(gst_structure_get_int64(started, "prompt-steps", &prompt_steps) && prompt_steps > 0);
  fail_unless(gst_structure_get_double(started, "prompts-ms", &prompts_ms) && prompts_ms > 0);
  fail_unless_equals_string(gst_structure_get_string(started, "from-cache"), "none");
  gst_structure_free(started);
  GstStructure *last = nullptr;
  while (GstStructure *s = pop_element_message(bus, "personaplex-stats")) {
    if (last) gst_structure_free(last);
    last = s;
  }
  fail_unless(last != nullptr, "no stats message");
  guint64 processed = 0, late = 1;
  gdouble step_ms = -1, rtf = -1;
  gboolean live = TRUE;
  fail_unless(gst_structure_get_uint64(last, "frames-processed", &processed));
  fail_unless(gst_structure_get_uint64(last, "frames-late", &late));
  fail_unless(gst_structure_get_double(last, "step-time-ms", &step_ms));
  fail_unless(gst_structure_get_double(last, "real-time-factor", &rtf));
  fail_unless(gst_structure_get_boolean(last, "live", &live));
  fail_unless(gst_structure_has_field(last, "frames-behind"));
  fail_unless_equals_uint64(processed, 24);
  fail_unless_equals_uint64(late, 0);
  fail_unless(step_ms > 0 && rtf > 0 && !live);
  gst_structure_free(last);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

// After the reset signal, the same input gives the fresh conversation's output.
GST_START_TEST(test_reset_signal_restarts) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  push_pcm(h, f.user_pcm, 0, 10 * kFrame, 1920);
  std::vector<float> first = pull_all_f32(h);
  g_signal_emit_by_name(element, "reset");
  push_pcm(h, f.user_pcm, 0, 10 * kFrame, 1920, 10 * kFrameDuration);
  std::vector<float> again = pull_all_f32(h);
  fail_unless(max_diff(first, frames_of(f.out_pcm, 0, 10)) < 1e-4);
  fail_unless(max_diff(first, again) == 0.0);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

GST_START_TEST(test_flush_restarts) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  push_pcm(h, f.user_pcm, 0, 6 * kFrame + 500, 1920);  // the partial frame is dropped by the flush
  std::vector<float> first = pull_all_f32(h);
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_start()));
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  fail_unless(gst_harness_push_event(h, gst_event_new_segment(&segment)));
  std::vector<GstBuffer *> out;
  push_pcm(h, f.user_pcm, 0, 6 * kFrame, 1920);
  std::vector<float> again = pull_all_f32(h, &out);
  fail_unless_equals_uint64(GST_BUFFER_PTS(out[0]), 0);
  fail_unless(GST_BUFFER_IS_DISCONT(out[0]));
  for (GstBuffer *b : out) gst_buffer_unref(b);
  fail_unless(max_diff(first, again) == 0.0);
  gst_harness_teardown(h);
  gst_object_unref(element);
}
GST_END_TEST;

// A prompt changed while playing applies at the next reset, not before.
GST_START_TEST(test_prompt_change_applies_at_reset) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  GstHarness *h = harness(element);
  push_pcm(h, f.user_pcm, 0, 4 * kFrame, 1920);
  g_object_set(element, "prompt", "", nullptr);
  push_pcm(h, f.user_pcm, 4 * kFrame, 4 * kFrame, 1920, 4 * kFrameDuration);
  fail_unless(max_diff(pull_all_f32(h), frames_of(f.out_pcm, 0, 8)) < 1e-4);
  g_signal_emit_by_name(element, "reset");
  push_pcm(h, f.user_pcm, 0, 8 * kFrame, 1920, 8 * kFrameDuration);
  std::vector<float> unprompted = pull_all_f32(h);
  gst_harness_teardown(h);
  gst_object_unref(element);

  GstElement *fresh = make_element();
  g_object_set(fresh, "prompt", "", nullptr);
  h = harness(fresh);
  push_pcm(h, f.user_pcm, 0, 8 * kFrame, 1920);
  std::vector<float> expected = pull_all_f32(h);
  fail_unless(max_diff(unprompted, expected) == 0.0);
  fail_unless(max_diff(unprompted, frames_of(f.out_pcm, 0, 8)) > 1e-3, "the prompt made no difference");
  gst_harness_teardown(h);
  gst_object_unref(fresh);
}
GST_END_TEST;

// Two elements on one model, interleaved: each gives what it gives alone.
GST_START_TEST(test_shared_model_independent_conversations) {
  const Fixture &f = fixture();
  std::vector<float> other(f.user_pcm.rbegin(), f.user_pcm.rend());
  GstElement *a = make_element(), *b = make_element();
  GstHarness *ha = harness(a), *hb = harness(b);
  std::vector<float> out_a, out_b;
  for (size_t k = 0; k < 12; ++k) {
    push_pcm(ha, f.user_pcm, k * kFrame, kFrame, kFrame, k * kFrameDuration);
    push_pcm(hb, other, k * kFrame, kFrame, kFrame, k * kFrameDuration);
    auto pa = pull_all_f32(ha), pb = pull_all_f32(hb);
    out_a.insert(out_a.end(), pa.begin(), pa.end());
    out_b.insert(out_b.end(), pb.begin(), pb.end());
  }
  gst_harness_teardown(ha);
  gst_harness_teardown(hb);
  gst_object_unref(a);
  gst_object_unref(b);
  fail_unless(max_diff(out_a, frames_of(f.out_pcm, 0, 12)) < 1e-4);

  GstElement *alone = make_element();
  GstHarness *h = harness(alone);
  push_pcm(h, other, 0, 12 * kFrame, kFrame);
  fail_unless(max_diff(pull_all_f32(h), out_b) == 0.0);
  gst_harness_teardown(h);
  gst_object_unref(alone);
}
GST_END_TEST;

// Elements with batch-size 2 on one model share one batch of two slots: a
// third is refused (busy) until one goes; each conversation, stepped from
// its own streaming thread, is the one it would be alone.
GST_START_TEST(test_batched_elements) {
  const Fixture &f = fixture();
  std::vector<float> other(f.user_pcm.rbegin(), f.user_pcm.rend());
  GstElement *a = make_element(), *b = make_element();
  g_object_set(a, "batch-size", 2u, nullptr);
  g_object_set(b, "batch-size", 2u, nullptr);
  GstHarness *ha = harness(a), *hb = harness(b);
  fail_unless_equals_int(gst_element_set_state(a, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
  fail_unless_equals_int(gst_element_set_state(b, GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);

  GstBus *bus = gst_bus_new();
  GstElement *c = make_element(bus);
  g_object_set(c, "batch-size", 2u, nullptr);
  expect_start_failure(c, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_BUSY, "all 2 slots");

  const size_t frames = 12;
  std::vector<float> out_a, out_b;
  auto converse_part = [&](GstHarness *h, const std::vector<float> *pcm, std::vector<float> *out) {
    push_pcm(h, *pcm, 0, frames * kFrame, kFrame);
    *out = pull_all_f32(h);
  };
  std::thread ta(converse_part, ha, &f.user_pcm, &out_a);
  std::thread tb(converse_part, hb, &other, &out_b);
  ta.join();
  tb.join();
  fail_unless(max_diff(out_a, frames_of(f.out_pcm, 0, frames)) < 1e-4);

  gst_harness_teardown(ha);  // a leaves: c finds a slot
  gst_object_unref(a);
  fail_unless(gst_element_set_state(c, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE);
  gst_element_set_state(c, GST_STATE_NULL);
  gst_object_unref(c);
  release_bus(bus);
  gst_harness_teardown(hb);
  gst_object_unref(b);

  GstElement *alone = make_element();
  GstHarness *h = harness(alone);
  push_pcm(h, other, 0, frames * kFrame, kFrame);
  fail_unless(max_diff(pull_all_f32(h), out_b) < 1e-5);
  gst_harness_teardown(h);
  gst_object_unref(alone);
}
GST_END_TEST;

GST_START_TEST(test_missing_weights) {
  expect_start_failure("lm-weights", "/nonexistent/model.safetensors", GST_RESOURCE_ERROR,
                       GST_RESOURCE_ERROR_NOT_FOUND, "LM weights file \"/nonexistent/model.safetensors\"");
  expect_start_failure("tokenizer", "/nonexistent/spm.model", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
                       "tokenizer");
  expect_start_failure("model-dir", "/nonexistent/dir", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND,
                       "model directory");
  // Nothing named at all.
  GstBus *bus = gst_bus_new();
  GstElement *element = gst_element_factory_make("personaplex", nullptr);
  gst_object_ref_sink(element);
  gst_element_set_bus(element, bus);
  expect_start_failure(element, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_NOT_FOUND, "LM weights");
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

GST_START_TEST(test_corrupt_weights) {
  const std::string path = scratch_dir() + "/corrupt.safetensors";
  std::ofstream(path) << "\x10\x00\x00\x00\x00\x00\x00\x00{not json at all";
  expect_start_failure("lm-weights", path.c_str(), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, path);
  expect_start_failure("mimi-weights", path.c_str(), GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ, path);
  expect_start_failure("device", "tpu", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, "tpu");
  expect_start_failure("device", "cuda:x", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS,
                       "auto, cpu, cuda, cuda:N");
}
GST_END_TEST;

// The element with `property` set to `value` answers the fixture's user:
// as much audio as it was given, finite and not silent.
static void expect_conversation_with(const char *property, const char *value) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  gst_util_set_object_arg(G_OBJECT(element), property, value);
  GstHarness *h = harness(element);
  push_pcm(h, f.user_pcm, 0, 12 * kFrame, kFrame);
  std::vector<float> out = pull_all_f32(h);
  fail_unless_equals_int(out.size(), 12 * kFrame);
  double energy = 0;
  for (float v : out) {
    fail_unless(std::isfinite(v));
    energy += double(v) * v;
  }
  fail_unless(energy > 0, "%s=%s gave silence", property, value);
  gst_harness_teardown(h);
  gst_object_unref(element);
}

// 8-bit weights: the same conversation within the quantization's error.
GST_START_TEST(test_int8_weights) { expect_conversation_with("weight-format", "int8"); }
GST_END_TEST;

// An fp8 KV cache.
GST_START_TEST(test_fp8_kv_cache) { expect_conversation_with("kv-cache", "fp8"); }
GST_END_TEST;

// Mimi in bf16.
GST_START_TEST(test_bf16_mimi) { expect_conversation_with("mimi-dtype", "bfloat16"); }
GST_END_TEST;

// The LM's last layer in host memory; more layers than the model has is a
// load error that says so.
GST_START_TEST(test_offloaded_layer) {
  expect_conversation_with("offload-layers", "1");
  expect_start_failure("offload-layers", "99", GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_OPEN_READ,
                       "cannot keep 99 layers in host memory");
}
GST_END_TEST;

GST_START_TEST(test_bad_voices) {
  const std::string voices = scratch_dir() + "/voices";
  g_mkdir_with_parents(voices.c_str(), 0755);
  std::ofstream(voices + "/NATF2.pt") << "not a voice";
  for (const char *voice : {"NATM9", "../x", "a/b", "/nonexistent/voice"}) {
    GstBus *bus = gst_bus_new();
    GstElement *element = make_element(bus);
    g_object_set(element, "voices-dir", voices.c_str(), "voice", voice, nullptr);
    const std::string needle = voice == std::string("NATM9") ? "available: NATF2.pt" : "voice name";
    expect_start_failure(element, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, needle);
    gst_object_unref(element);
    release_bus(bus);
  }
  // Found, but not a voice file.
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  g_object_set(element, "voices-dir", voices.c_str(), "voice", "NATF2", nullptr);
  expect_start_failure(element, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_READ, "NATF2.pt");
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

// A restart that cannot run (the voice changed to a bad one) fails the
// stream with an error instead of hanging.
GST_START_TEST(test_error_while_streaming) {
  const Fixture &f = fixture();
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  GstHarness *h = harness(element);
  push_pcm(h, f.user_pcm, 0, kFrame, kFrame);
  g_object_set(element, "voice", "../escape", nullptr);
  g_signal_emit_by_name(element, "reset");
  fail_unless_equals_int(gst_harness_push(h, f32_buffer(f.user_pcm.data(), kFrame, kFrameDuration)),
                         GST_FLOW_ERROR);
  GError *error = nullptr;
  const std::string text = pop_message(bus, GST_MESSAGE_ERROR, &error);
  fail_unless(error && error->domain == GST_RESOURCE_ERROR, "error: %s", text.c_str());
  fail_unless(text.find("../escape") != std::string::npos, "error: %s", text.c_str());
  g_error_free(error);
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

GST_START_TEST(test_caps_refused) {
  const Fixture &f = fixture();
  for (const char *caps : {"audio/x-raw, format=F32LE, rate=48000, channels=1, layout=interleaved",
                           "audio/x-raw, format=F32LE, rate=24000, channels=2, layout=interleaved",
                           "audio/x-raw, format=S24LE, rate=24000, channels=1, layout=interleaved"}) {
    GstElement *element = make_element();
    GstHarness *h = harness(element);
    gst_harness_set_src_caps_str(h, caps);
    fail_unless_equals_int(gst_harness_push(h, f32_buffer(f.user_pcm.data(), kFrame, 0)), GST_FLOW_NOT_NEGOTIATED);
    gst_harness_teardown(h);
    gst_object_unref(element);
  }
}
GST_END_TEST;

GST_START_TEST(test_state_cycles) {
  const Fixture &f = fixture();
  GstElement *element = make_element();
  std::vector<float> first;
  for (int cycle = 0; cycle < 3; ++cycle) {
    GstHarness *h = harness(element);
    push_pcm(h, f.user_pcm, 0, 3 * kFrame, 1920);
    std::vector<float> out = pull_all_f32(h);
    if (cycle == 0) first = out;
    fail_unless_equals_int(out.size(), 3 * kFrame);
    fail_unless(max_diff(out, first) == 0.0);
    gst_harness_teardown(h);  // back to NULL
  }
  gst_object_unref(element);
}
GST_END_TEST;

GST_START_TEST(test_properties) {
  GstElement *element = gst_element_factory_make("personaplex", nullptr);
  gst_object_ref_sink(element);
  gchar *device = nullptr, *voice = nullptr;
  gdouble temperature = 0, temperature_text = 0;
  guint top_k = 0, top_k_text = 0;
  guint64 seed = 1, latency = 0;
  guint batch_size = 0;
  gboolean greedy = TRUE, is_live = TRUE;
  g_object_get(element, "device", &device, "voice", &voice, "temperature", &temperature, "temperature-text",
               &temperature_text, "top-k", &top_k, "top-k-text", &top_k_text, "seed", &seed, "latency", &latency,
               "greedy", &greedy, "is-live", &is_live, "batch-size", &batch_size, nullptr);
  fail_unless_equals_string(device, "auto");
  fail_unless(voice == nullptr);
  fail_unless_equals_float(temperature, 0.8);
  fail_unless_equals_float(temperature_text, 0.7);
  fail_unless_equals_int(top_k, 250);
  fail_unless_equals_int(top_k_text, 25);
  fail_unless_equals_uint64(seed, 0);
  fail_unless_equals_uint64(latency, 80 * GST_MSECOND);
  fail_unless(!greedy && !is_live);
  fail_unless_equals_int(batch_size, 1);
  g_free(device);
  g_object_set(element, "model-dir", "/models/x", "voice", "NATF2", "prompt", "Hi.", nullptr);
  gchar *dir = nullptr, *prompt = nullptr;
  g_object_get(element, "model-dir", &dir, "prompt", &prompt, nullptr);
  fail_unless_equals_string(dir, "/models/x");
  fail_unless_equals_string(prompt, "Hi.");
  g_free(dir);
  g_free(prompt);
  gst_object_unref(element);
}
GST_END_TEST;

// dtype, weight-format, kv-cache and text-unit are enums: their values are listed, a
// bad one is refused when set (gst-launch-1.0 then refuses the pipeline).
GST_START_TEST(test_enum_properties) {
  GstElement *element = gst_element_factory_make("personaplex", nullptr);
  gst_object_ref_sink(element);
  const struct {
    const char *name, *fallback, *value;
    std::vector<std::string> nicks;
  } cases[] = {{"dtype", "auto", "float16", {"auto", "bfloat16", "float16", "float32"}},
               {"weight-format", "auto", "fp8", {"auto", "int8", "fp8"}},
               {"kv-cache", "auto", "fp8", {"auto", "fp8"}},
               {"mimi-dtype", "auto", "bfloat16", {"auto", "bfloat16", "float16", "float32"}},
               {"text-unit", "word", "cue", {"piece", "word", "cue"}}};
  for (const auto &c : cases) {
    GParamSpec *spec = g_object_class_find_property(G_OBJECT_GET_CLASS(element), c.name);
    fail_unless(spec && G_IS_PARAM_SPEC_ENUM(spec), "%s is not an enum", c.name);
    GEnumClass *klass = G_PARAM_SPEC_ENUM(spec)->enum_class;
    std::vector<std::string> nicks;
    for (guint i = 0; i < klass->n_values; ++i) nicks.push_back(klass->values[i].value_nick);
    fail_unless(nicks == c.nicks, "%s lists other values", c.name);
    fail_unless_equals_string(g_enum_get_value(klass, G_PARAM_SPEC_ENUM(spec)->default_value)->value_nick,
                              c.fallback);
    gst_util_set_object_arg(G_OBJECT(element), c.name, c.value);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, spec->value_type);
    g_object_get_property(G_OBJECT(element), c.name, &v);
    fail_unless_equals_string(g_enum_get_value(klass, g_value_get_enum(&v))->value_nick, c.value);
    gst_util_set_object_arg(G_OBJECT(element), c.name, "int4");  // refused: the value stays
    g_object_get_property(G_OBJECT(element), c.name, &v);
    fail_unless_equals_string(g_enum_get_value(klass, g_value_get_enum(&v))->value_nick, c.value);
    g_value_unset(&v);
  }
  gst_object_unref(element);
  GError *error = nullptr;
  GstElement *pipeline = gst_parse_launch("personaplex dtype=int4 ! fakesink", &error);
  fail_unless(error != nullptr, "dtype=int4 accepted");
  fail_unless(std::string(error->message).find("dtype") != std::string::npos, "%s", error->message);
  g_clear_error(&error);
  if (pipeline) gst_object_unref(pipeline);
}
GST_END_TEST;

// Without `voice`, the voices directory's NATF2; with none to be found, a
// warning that the conversation has no voice prompt.
GST_START_TEST(test_default_voice) {
  const Fixture &f = fixture();
  const std::string voices = scratch_dir() + "/default-voices";
  g_mkdir_with_parents(voices.c_str(), 0755);
  {
    std::ifstream in(f.voice, std::ios::binary);
    std::ofstream out(voices + "/NATF2.pt", std::ios::binary);
    out << in.rdbuf();
  }
  std::ofstream(voices + "/NATM1.wav") << "another voice, not read";
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  g_object_set(element, "voice", nullptr, "voices-dir", voices.c_str(), nullptr);
  GstHarness *h = harness(element);
  const std::vector<float> out = converse(h);
  fail_unless(max_diff(out, f.out_pcm) < 1e-4, "NATF2 was not the voice");
  fail_unless(pop_message(bus, GST_MESSAGE_WARNING).empty());
  gst_harness_teardown(h);

  g_object_set(element, "voice", "none", nullptr);
  h = harness(element);
  push_pcm(h, f.user_pcm, 0, kFrame, kFrame);
  const std::string warning = pop_message(bus, GST_MESSAGE_WARNING);
  fail_unless(warning.empty(), "warned after voice=none: %s", warning.c_str());
  gst_harness_teardown(h);

  const std::string empty = scratch_dir() + "/no-voices-here";
  g_mkdir_with_parents(empty.c_str(), 0755);
  g_object_set(element, "voice", nullptr, "voices-dir", empty.c_str(), nullptr);
  h = harness(element);
  push_pcm(h, f.user_pcm, 0, kFrame, kFrame);
  const std::string none = pop_message(bus, GST_MESSAGE_WARNING);
  fail_unless(none.find("No voice prompt") != std::string::npos, "warning: \"%s\"", none.c_str());
  gst_harness_teardown(h);
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

// A malformed device is a warning when set, and an error listing every
// accepted value when the element starts.
GST_START_TEST(test_device_checked_when_set) {
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element(bus);
  for (const char *good : {"auto", "cpu", "cuda", "cuda:1"}) {
    g_object_set(element, "device", good, nullptr);
    fail_unless(pop_message(bus, GST_MESSAGE_WARNING).empty(), "warned about %s", good);
  }
  g_object_set(element, "device", "gpu0", nullptr);
  const std::string warning = pop_message(bus, GST_MESSAGE_WARNING);
  fail_unless(warning.find("gpu0") != std::string::npos && warning.find("auto, cpu, cuda, cuda:N") != std::string::npos,
              "warning: %s", warning.c_str());
  expect_start_failure(element, bus, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS, "auto, cpu, cuda, cuda:N");
  gst_object_unref(element);
  release_bus(bus);
}
GST_END_TEST;

static Suite *personaplex_suite() {
  Suite *s = suite_create("personaplex");
  TCase *tc = tcase_create("offline");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_pipeline_reproduces_reference);
  tcase_add_test(tc, test_timestamps_follow_input);
  tcase_add_test(tc, test_output_has_input_length);
  tcase_add_test(tc, test_input_gap_is_silence);
  tcase_add_test(tc, test_output_format);
  tcase_add_test(tc, test_words_and_gaps);
  tcase_add_test(tc, test_stats_messages);
  tcase_add_test(tc, test_reset_signal_restarts);
  tcase_add_test(tc, test_flush_restarts);
  tcase_add_test(tc, test_prompt_change_applies_at_reset);
  tcase_add_test(tc, test_shared_model_independent_conversations);
  tcase_add_test(tc, test_batched_elements);
  tcase_add_test(tc, test_missing_weights);
  tcase_add_test(tc, test_corrupt_weights);
  tcase_add_test(tc, test_int8_weights);
  tcase_add_test(tc, test_fp8_kv_cache);
  tcase_add_test(tc, test_bf16_mimi);
  tcase_add_test(tc, test_offloaded_layer);
  tcase_add_test(tc, test_bad_voices);
  tcase_add_test(tc, test_error_while_streaming);
  tcase_add_test(tc, test_caps_refused);
  tcase_add_test(tc, test_state_cycles);
  tcase_add_test(tc, test_properties);
  tcase_add_test(tc, test_enum_properties);
  tcase_add_test(tc, test_device_checked_when_set);
  tcase_add_test(tc, test_default_voice);
  return s;
}

int main(int argc, char **argv) {
  return run_with_fixtures(argc, argv, personaplex_suite, "personaplex", __FILE__);
}
