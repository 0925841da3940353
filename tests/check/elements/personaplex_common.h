// Helpers of the personaplex element tests: the reference fixtures' tiny
// model and conversation, configured elements, harnesses on both source
// pads, and buffer readers.
#pragma once

#include "check_buffers.h"

// libtorch and the C++ library come before gstcheck.h, whose check.h macros
// would break them; the tests include nothing after this file.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "text/text_track.h"

#include <gst/audio/audio.h>
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/check/gsttestclock.h>

namespace pptest {

using checkutil::f32_buffer;
using checkutil::f32_of;
using checkutil::pop_message;
using checkutil::release_bus;
using checkutil::s16_buffer;

constexpr int kRate = 24000;
constexpr size_t kFrame = 1920;
constexpr GstClockTime kFrameDuration = 80 * GST_MSECOND;
extern const char *const kCapsF32;
extern const char *const kCapsS16;

// The fixtures' conversation: files, prompt, user audio, the reference's
// agent audio and the words it spoke (one per non-pad text token).
struct Fixture {
  std::string lm_weights, lm_config, mimi_weights, mimi_config, tokenizer, voice, user_wav;
  std::string prompt;
  std::vector<float> user_pcm, out_pcm;
  std::vector<std::string> words;
  std::vector<bool> has_word;  // per frame
  std::vector<std::string> pieces;  // per frame: its piece with "▁" as a space, "" for a pad
};

// What the text stream of the fixture conversation, starting at `start`,
// carries with `options` (the engine's grouping, which the element uses).
std::vector<personaplex::text::TimedText> expected_text(const personaplex::text::TextTrackOptions &options,
                                                        GstClockTime start, bool words_only = false);

// Whether PERSONAPLEX_FIXTURES holds the fixtures (main skips without them).
bool have_fixtures();
// A test program's main(): runs the suite `make_suite` makes, or exits 77
// (skipped) without the fixtures.
int run_with_fixtures(int argc, char **argv, Suite *(*make_suite)(), const char *name, const char *file);
// Loaded on first use, in the test's own process.
const Fixture &fixture();

// A personaplex element set up for the fixture conversation (greedy, CPU,
// text-unit=piece), floating ref sunk, `bus` attached when given.
GstElement *make_element(GstBus *bus = nullptr);
// Gives `element` (made by a pipeline description) make_element()'s model,
// voice, prompt and sampling settings.
void copy_fixture_settings(GstElement *element);
// A whole file's bytes ("" when unreadable).
std::string read_file(const std::string &path);
// A harness on sink/src with F32 caps: live or not as asked of its source.
GstHarness *harness(GstElement *element, bool live = false);
// A harness on text_src alone.
GstHarness *text_harness(GstElement *element);

// Pushes samples [first, first + count) of `pcm` in buffers of `chunk`,
// timestamped from `start`.
void push_pcm(GstHarness *h, const std::vector<float> &pcm, size_t first, size_t count, size_t chunk,
              GstClockTime start = 0);

std::vector<float> pull_all_f32(GstHarness *h, std::vector<GstBuffer *> *kept = nullptr);
// The frames [first, first + count) of `pcm`.
std::vector<float> frames_of(const std::vector<float> &pcm, size_t first, size_t count);
double max_diff(const std::vector<float> &a, const std::vector<float> &b);

// What text_src gave: word buffers and GAP events, in timestamp order.
struct TextItem {
  std::string text;  // "" for a GAP
  GstClockTime pts, duration;
  bool gap;
};
// Pushes come from the pad's own task: with `saw_eos`, waits for EOS; with
// `at_least`, for that many items (10 s at most).
std::vector<TextItem> pull_text(GstHarness *text, bool *saw_eos = nullptr, size_t at_least = 0);
// Whether an event of `type` is among those the harness received.
bool received_event(GstHarness *h, GstEventType type);

// The first element message named `name` (a copy of its structure), or
// null when none comes within `timeout`.
GstStructure *pop_element_message(GstBus *bus, const char *name, GstClockTime timeout = 0);


// A scratch directory of this test process.
std::string scratch_dir();

}  // namespace pptest
