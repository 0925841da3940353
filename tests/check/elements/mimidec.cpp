// mimidec: PCM against the reference, caps, concealment of GAPs, invalid
// codes, clipping, flushing, state changes and broken model files.
#include "mimi_common.h"

using namespace mimitest;

namespace {

using Frames = std::vector<std::vector<guint16>>;

GstHarness *decoder(const ModelFiles &model, GstBus *bus = nullptr,
                    const char *sink_caps = nullptr) {
  GstHarness *h = harness("mimidec", model, bus);
  if (sink_caps) gst_harness_set_sink_caps_str(h, sink_caps);
  gst_harness_set_src_caps_str(h, kMimiCaps);
  return h;
}

// Pushes frames with the timestamps of frames start, start + 1...
void push_frames(GstHarness *h, const Frames &frames, size_t start = 0) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const GstClockTime pts = (start + i) * kFrameDuration;
    const GstFlowReturn ret = gst_harness_push(h, codes_buffer(frames[i], pts));
    fail_unless_equals_int(ret, GST_FLOW_OK);
  }
}

std::vector<float> decode(const ModelFiles &model, const Frames &frames) {
  GstHarness *h = decoder(model);
  push_frames(h, frames);
  auto pcm = pull_all_f32(h);
  gst_harness_teardown(h);
  return pcm;
}

Frames tiny_codes(size_t frames, unsigned seed = 1) {
  return encode(tiny_model(), test_signal(frames * kFrame, seed));
}

float max_abs_diff(const float *a, const float *b, size_t n) {
  float worst = 0;
  for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

bool all_zero(const float *a, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (a[i] != 0.0f) return false;
  return true;
}

// The fixture's codes ([1, K, T] in io.safetensors) as frames.
Frames fixture_frames() {
  at::Tensor codes = fixture_tensor("codes", at::kLong);
  Frames frames(codes.size(2), std::vector<guint16>(kCodebooks));
  for (size_t t = 0; t < frames.size(); ++t)
    for (int k = 0; k < kCodebooks; ++k) frames[t][k] = codes[0][k][t].item<int64_t>();
  return frames;
}

}  // namespace

GST_START_TEST(test_decode_matches_reference) {
  const ModelFiles *model = fixture_model();
  if (!model) return;
  at::Tensor expected = fixture_tensor("decoded_pcm", at::kFloat);
  const Frames frames = fixture_frames();

  GstHarness *h = decoder(*model);
  push_frames(h, frames);
  GstCaps *caps = gst_pad_get_current_caps(h->sinkpad);
  GstCaps *f32 = gst_caps_from_string(kPcmCapsF32);
  fail_unless(gst_caps_is_equal(caps, f32), "caps %" GST_PTR_FORMAT, caps);
  gst_caps_unref(caps);
  gst_caps_unref(f32);
  std::vector<float> pcm;
  for (size_t t = 0; t < frames.size(); ++t) {
    GstBuffer *buffer = gst_harness_pull(h);
    fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), t * kFrameDuration);
    fail_unless_equals_uint64(GST_BUFFER_DURATION(buffer), kFrameDuration);
    auto part = f32_of(buffer);
    fail_unless_equals_int(part.size(), kFrame);
    pcm.insert(pcm.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  gst_harness_teardown(h);
  fail_unless_equals_int(pcm.size(), expected.numel());
  const float diff = max_abs_diff(pcm.data(), expected.data_ptr<float>(), pcm.size());
  fail_unless(diff <= 1e-4f, "decoded PCM differs from the reference by %g", diff);

  // The same bytes cut anywhere, without timestamps (a code file): the same audio.
  GstHarness *file = decoder(*model);
  std::vector<guint16> all;
  for (const auto &f : frames) all.insert(all.end(), f.begin(), f.end());
  for (size_t at = 0; at < all.size(); at += 50) {  // 100 bytes, not a whole frame
    std::vector<guint16> part(all.begin() + at, all.begin() + MIN(at + 50, all.size()));
    GstBuffer *buffer = codes_buffer(part, GST_CLOCK_TIME_NONE);
    GST_BUFFER_DURATION(buffer) = GST_CLOCK_TIME_NONE;
    fail_unless_equals_int(gst_harness_push(file, buffer), GST_FLOW_OK);
  }
  auto from_file = pull_all_f32(file);
  gst_harness_teardown(file);
  fail_unless_equals_int(from_file.size(), pcm.size());
  fail_unless(from_file == pcm);
}
GST_END_TEST;

// In bf16 (dtype=bfloat16): the reference's audio within bf16 rounding
// (fixture-check's tolerance, 5e-2; measured 1.5e-3).
GST_START_TEST(test_bf16_decode_is_close) {
  const std::optional<ModelFiles> model = fixture_model_in("bfloat16");
  if (!model) return;
  at::Tensor expected = fixture_tensor("decoded_pcm", at::kFloat);
  const Frames frames = fixture_frames();
  GstHarness *h = decoder(*model);
  push_frames(h, frames);
  std::vector<float> pcm = pull_all_f32(h);
  gst_harness_teardown(h);
  fail_unless_equals_int(pcm.size(), expected.numel());
  const float diff = max_abs_diff(pcm.data(), expected.data_ptr<float>(), pcm.size());
  // More than fp32 rounding (1e-7): it ran in bf16. Within fixture-check's
  // tolerance, relative to the largest sample (at least 1).
  const float tol = 5e-2f * std::max(1.0f, expected.abs().max().item<float>());
  fail_unless(diff > 1e-5f && diff <= tol, "bf16 decoded PCM differs from the reference by %g", diff);
}
GST_END_TEST;

GST_START_TEST(test_s16_output) {
  const Frames frames = tiny_codes(3);
  const auto reference = decode(tiny_model(), frames);
  GstHarness *h = decoder(tiny_model(), nullptr, kPcmCapsS16);
  push_frames(h, frames);
  std::vector<gint16> s16;
  while (GstBuffer *buffer = gst_harness_try_pull(h)) {
    GstMapInfo map;
    gst_buffer_map(buffer, &map, GST_MAP_READ);
    for (size_t i = 0; i + 1 < map.size; i += 2) s16.push_back(GST_READ_UINT16_LE(map.data + i));
    gst_buffer_unmap(buffer, &map);
    gst_buffer_unref(buffer);
  }
  gst_harness_teardown(h);
  fail_unless_equals_int(s16.size(), reference.size());
  bool any_sound = false;
  for (size_t i = 0; i < s16.size(); ++i) {
    const long expected = CLAMP(std::lrint(reference[i] * 32768.0), -32768L, 32767L);
    fail_unless(std::labs(s16[i] - expected) <= 1, "sample %zu: %d, expected %ld", i, s16[i],
                expected);
    any_sound |= s16[i] != 0;
  }
  fail_unless(any_sound);
}
GST_END_TEST;

GST_START_TEST(test_caps_refused) {
  const char *refused[] = {
      // Not the model's codebooks or codebook size.
      "audio/x-mimi, rate=24000, channels=1, frame-duration-us=80000, codebooks=4, "
      "codebook-size=2048",
      "audio/x-mimi, rate=24000, channels=1, frame-duration-us=80000, codebooks=8, "
      "codebook-size=1024",
  };
  for (const char *text : refused) {
    GstBus *bus = gst_bus_new();
    GstHarness *h = harness("mimidec", tiny_model(), bus);
    GstCaps *caps = gst_caps_from_string(text);
    gst_harness_push_event(h, gst_event_new_caps(caps));
    gst_caps_unref(caps);
    const std::string error = pop_message(bus, GST_MESSAGE_ERROR);
    fail_unless(error.find("does not fit the model") != std::string::npos, "%s", error.c_str());
    GstSegment segment;
    gst_segment_init(&segment, GST_FORMAT_TIME);
    gst_harness_push_event(h, gst_event_new_segment(&segment));
    fail_unless_equals_int(gst_harness_push(h, codes_buffer(std::vector<guint16>(4, 0), 0)),
                           GST_FLOW_NOT_NEGOTIATED);
    gst_harness_teardown(h);
    release_bus(bus);
  }
  GstHarness *h = harness("mimidec", tiny_model());
  GstCaps *other_rate = gst_caps_from_string(
      "audio/x-mimi, rate=48000, channels=1, frame-duration-us=80000, codebooks=8, "
      "codebook-size=2048");
  fail_if(gst_pad_peer_query_accept_caps(h->srcpad, other_rate));
  gst_caps_unref(other_rate);
  GstCaps *ok = gst_caps_from_string(kMimiCaps);
  fail_unless(gst_pad_peer_query_accept_caps(h->srcpad, ok));
  gst_caps_unref(ok);
  gst_harness_teardown(h);
}
GST_END_TEST;

GST_START_TEST(test_gap_conceals) {
  const Frames frames = tiny_codes(8);
  GstHarness *h = decoder(tiny_model());
  push_frames(h, Frames(frames.begin(), frames.begin() + 4));
  pull_all_f32(h);

  // Frames 4 and 5 lost: 160 ms of concealment in their place.
  fail_unless(gst_harness_push_event(h, gst_event_new_gap(4 * kFrameDuration,
                                                          2 * kFrameDuration)));
  GstBuffer *buffer = gst_harness_pull(h);
  fail_unless_equals_uint64(GST_BUFFER_PTS(buffer), 4 * kFrameDuration);
  fail_unless_equals_uint64(GST_BUFFER_DURATION(buffer), 2 * kFrameDuration);
  const auto concealed = f32_of(buffer);
  gst_buffer_unref(buffer);
  fail_unless_equals_int(concealed.size(), 2 * kFrame);
  // The first frame repeats the last codes, fading out; then silence.
  Frames repeated(frames.begin(), frames.begin() + 4);
  repeated.push_back(frames[3]);
  const auto again = decode(tiny_model(), repeated);
  for (int i = 0; i < kFrame; ++i) {
    const float expected = again[4 * kFrame + i] * (1.0f - (i + 1.0f) / kFrame);
    fail_unless(std::fabs(concealed[i] - expected) <= 1e-6f, "sample %d: %g, expected %g", i,
                concealed[i], expected);
  }
  fail_if(all_zero(concealed.data(), kFrame));
  fail_unless(all_zero(concealed.data() + kFrame, kFrame));

  // Decoding goes on after the gap.
  push_frames(h, Frames(frames.begin() + 6, frames.end()), 6);
  for (int i = 6; i < 8; ++i) {
    GstBuffer *b = gst_harness_pull(h);
    fail_unless_equals_uint64(GST_BUFFER_PTS(b), i * kFrameDuration);
    fail_unless_equals_int(gst_buffer_get_size(b), kFrame * 4);
    gst_buffer_unref(b);
  }
  gst_harness_teardown(h);
}
GST_END_TEST;

GST_START_TEST(test_gap_long_and_first) {
  GstHarness *h = decoder(tiny_model());
  // Nothing decoded yet: silence; 2.5 s goes out in pieces of at most 1 s.
  fail_unless(gst_harness_push_event(h, gst_event_new_gap(0, 2500 * GST_MSECOND)));
  GstClockTime next = 0;
  size_t total = 0;
  int buffers = 0;
  while (GstBuffer *b = gst_harness_try_pull(h)) {
    fail_unless_equals_uint64(GST_BUFFER_PTS(b), next);
    next += GST_BUFFER_DURATION(b);
    const auto pcm = f32_of(b);
    fail_unless(pcm.size() <= static_cast<size_t>(kRate));
    fail_unless(all_zero(pcm.data(), pcm.size()));
    total += pcm.size();
    ++buffers;
    gst_buffer_unref(b);
  }
  fail_unless_equals_int(total, 60000);
  fail_unless(buffers >= 3);
  fail_unless_equals_uint64(next, 2500 * GST_MSECOND);
  gst_harness_teardown(h);

  // With the base class's plc off, the GAP goes downstream instead.
  GstHarness *off = decoder(tiny_model());
  g_object_set(off->element, "plc", FALSE, nullptr);
  fail_unless(gst_harness_push_event(off, gst_event_new_gap(0, kFrameDuration)));
  fail_unless_equals_int(gst_harness_buffers_in_queue(off), 0);
  bool gap = false;
  while (GstEvent *e = gst_harness_try_pull_event(off)) {
    gap |= GST_EVENT_TYPE(e) == GST_EVENT_GAP;
    gst_event_unref(e);
  }
  fail_unless(gap);
  gst_harness_teardown(off);
}
GST_END_TEST;

GST_START_TEST(test_invalid_code) {
  Frames frames = tiny_codes(3);
  frames[1][2] = 4000;

  // Default max-errors: a warning naming frame and value, the frame concealed.
  GstBus *bus = gst_bus_new();
  GstHarness *h = decoder(tiny_model(), bus);
  push_frames(h, frames);
  const std::string warning = pop_message(bus, GST_MESSAGE_WARNING);
  fail_unless(warning.find("frame 1") != std::string::npos, "%s", warning.c_str());
  fail_unless(warning.find("4000") != std::string::npos, "%s", warning.c_str());
  fail_unless(warning.find("codebook 2") != std::string::npos, "%s", warning.c_str());
  fail_unless_equals_int(pull_all_f32(h).size(), 3 * kFrame);
  gst_harness_teardown(h);

  // max-errors=0: an error, the flow stops.
  h = decoder(tiny_model(), bus);
  g_object_set(h->element, "max-errors", 0, nullptr);
  fail_unless_equals_int(gst_harness_push(h, codes_buffer(frames[0], 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(h, codes_buffer(frames[1], kFrameDuration)),
                         GST_FLOW_ERROR);
  const std::string error = pop_message(bus, GST_MESSAGE_ERROR);
  fail_unless(error.find("4000") != std::string::npos, "%s", error.c_str());
  gst_harness_teardown(h);

  // max-errors=1: one bad frame is concealed, the second in a row stops it.
  h = decoder(tiny_model(), bus);
  g_object_set(h->element, "max-errors", 1, nullptr);
  fail_unless_equals_int(gst_harness_push(h, codes_buffer(frames[1], 0)), GST_FLOW_OK);
  fail_unless_equals_int(gst_harness_push(h, codes_buffer(frames[1], kFrameDuration)),
                         GST_FLOW_ERROR);
  fail_unless_equals_int(gst_harness_buffers_received(h), 1);
  gst_harness_teardown(h);
  release_bus(bus);
}
GST_END_TEST;

GST_START_TEST(test_clipping_meta) {
  const Frames frames = tiny_codes(2);
  const auto whole = decode(tiny_model(), frames);
  GstHarness *h = decoder(tiny_model());
  fail_unless_equals_int(gst_harness_push(h, codes_buffer(frames[0], 0)), GST_FLOW_OK);
  GstBuffer *clipped = codes_buffer(frames[1], kFrameDuration);
  gst_buffer_add_audio_clipping_meta(clipped, GST_FORMAT_DEFAULT, 100, 960);
  fail_unless_equals_int(gst_harness_push(h, clipped), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  GstBuffer *b = gst_harness_pull(h);
  const auto pcm = f32_of(b);
  fail_unless_equals_int(pcm.size(), kFrame - 100 - 960);
  fail_unless_equals_uint64(GST_BUFFER_DURATION(b),
                            gst_util_uint64_scale_int(pcm.size(), GST_SECOND, kRate));
  gst_buffer_unref(b);
  fail_unless(std::equal(pcm.begin(), pcm.end(), whole.begin() + kFrame + 100));
  gst_harness_teardown(h);
}
GST_END_TEST;

GST_START_TEST(test_roundtrip_keeps_length) {
  const size_t n = 30000;  // 15.625 frames
  GstHarness *enc = harness("mimienc", tiny_model());
  gst_harness_set_src_caps_str(enc, kPcmCapsF32);
  push_f32(enc, test_signal(n, 4), 4096);
  fail_unless(gst_harness_push_event(enc, gst_event_new_eos()));
  GstHarness *dec = decoder(tiny_model());
  while (GstBuffer *b = gst_harness_try_pull(enc))
    fail_unless_equals_int(gst_harness_push(dec, b), GST_FLOW_OK);
  fail_unless(gst_harness_push_event(dec, gst_event_new_eos()));
  fail_unless_equals_int(pull_all_f32(dec).size(), n);
  gst_harness_teardown(enc);
  gst_harness_teardown(dec);
}
GST_END_TEST;

GST_START_TEST(test_flush_restarts_stream) {
  const Frames before = tiny_codes(5, 2);
  const Frames after = tiny_codes(4, 3);
  const auto fresh = decode(tiny_model(), after);
  Frames both = before;
  both.insert(both.end(), after.begin(), after.end());
  const auto continued = decode(tiny_model(), both);
  fail_if(std::equal(fresh.begin(), fresh.end(), continued.begin() + 5 * kFrame),
          "the codec state has no effect on this audio");

  GstHarness *h = decoder(tiny_model());
  push_frames(h, before);
  flush_and_restart(h);
  while (GstBuffer *b = gst_harness_try_pull(h)) gst_buffer_unref(b);
  push_frames(h, after);
  fail_unless(pull_all_f32(h) == fresh);
  gst_harness_teardown(h);
}
GST_END_TEST;

GST_START_TEST(test_bad_weights) {
  const ModelFiles &tiny = tiny_model();
  const std::string missing = scratch_dir() + "/dec-missing.safetensors";
  const std::string truncated = scratch_dir() + "/dec-truncated.safetensors";
  {
    std::ifstream in(tiny.weights, std::ios::binary);
    std::string head(5000, '\0');
    in.read(&head[0], head.size());
    std::ofstream(truncated, std::ios::binary) << head;
  }
  const struct {
    std::string weights;
    gint code;
  } cases[] = {{missing, GST_RESOURCE_ERROR_NOT_FOUND}, {truncated, GST_RESOURCE_ERROR_OPEN_READ}};
  for (const auto &c : cases) {
    GstBus *bus = gst_bus_new();
    GstElement *element = make_element("mimidec", {c.weights, tiny.config}, bus);
    fail_unless_equals_int(gst_element_set_state(element, GST_STATE_PAUSED),
                           GST_STATE_CHANGE_FAILURE);
    GError *error = nullptr;
    const std::string text = pop_message(bus, GST_MESSAGE_ERROR, &error);
    fail_unless(error && error->domain == GST_RESOURCE_ERROR && error->code == c.code, "%s",
                text.c_str());
    fail_unless(text.find(c.weights) != std::string::npos, "%s", text.c_str());
    g_error_free(error);
    gst_element_set_state(element, GST_STATE_NULL);
    gst_object_unref(element);
    release_bus(bus);
  }
}
GST_END_TEST;

GST_START_TEST(test_state_cycles) {
  GstBus *bus = gst_bus_new();
  GstElement *element = make_element("mimidec", tiny_model(), bus);
  for (int i = 0; i < 3; ++i) {
    fail_unless_equals_int(gst_element_set_state(element, GST_STATE_PLAYING),
                           GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int(gst_element_set_state(element, GST_STATE_NULL),
                           GST_STATE_CHANGE_SUCCESS);
  }
  fail_unless(pop_message(bus, GST_MESSAGE_ERROR).empty());
  gst_object_unref(element);
  release_bus(bus);
  fail_unless_equals_int(decode(tiny_model(), tiny_codes(2)).size(), 2 * kFrame);
}
GST_END_TEST;

static Suite *mimidec_suite() {
  Suite *s = suite_create("mimidec");
  TCase *tc = tcase_create("general");
  suite_add_tcase(s, tc);
  tcase_add_test(tc, test_decode_matches_reference);
  tcase_add_test(tc, test_bf16_decode_is_close);
  tcase_add_test(tc, test_s16_output);
  tcase_add_test(tc, test_caps_refused);
  tcase_add_test(tc, test_gap_conceals);
  tcase_add_test(tc, test_gap_long_and_first);
  tcase_add_test(tc, test_invalid_code);
  tcase_add_test(tc, test_clipping_meta);
  tcase_add_test(tc, test_roundtrip_keeps_length);
  tcase_add_test(tc, test_flush_restarts_stream);
  tcase_add_test(tc, test_bad_weights);
  tcase_add_test(tc, test_state_cycles);
  return s;
}

int main(int argc, char **argv) {
  gst_check_init(&argc, &argv);
  setup();
  const int failed = gst_check_run_suite(mimidec_suite(), "mimidec", __FILE__);
  teardown();
  return failed ? 1 : 0;
}
