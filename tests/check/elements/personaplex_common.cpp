#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/safetensors.h"
#include "personaplex_common.h"

namespace pptest {

const char *const kCapsF32 = "audio/x-raw, format=F32LE, rate=24000, channels=1, layout=interleaved";
const char *const kCapsS16 = "audio/x-raw, format=S16LE, rate=24000, channels=1, layout=interleaved";

namespace {

bool is_file(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string fixtures_dir() {
  const char *dir = std::getenv("PERSONAPLEX_FIXTURES");
  return dir ? dir : "";
}

std::vector<float> floats(const at::Tensor &t) {
  at::Tensor c = t.contiguous().view({-1});
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

std::string spaced(std::string piece) {
  const std::string space = "\xE2\x96\x81";
  for (size_t p; (p = piece.find(space)) != std::string::npos;) piece.replace(p, space.size(), " ");
  return piece;
}

Fixture load_fixture() {
  const std::string lm = fixtures_dir() + "/lm", mimi = fixtures_dir() + "/mimi";
  Fixture f;
  f.lm_weights = lm + "/weights.safetensors";
  f.lm_config = lm + "/config.json";
  f.mimi_weights = mimi + "/weights.safetensors";
  f.mimi_config = mimi + "/config.json";
  f.tokenizer = lm + "/tokenizer.model";
  f.voice = lm + "/voice.pt";
  f.user_wav = lm + "/user_f32.wav";
  personaplex::SafeTensors io(lm + "/io.safetensors");
  const at::Device cpu(at::kCPU);
  f.user_pcm = floats(io.load("user_pcm", at::kFloat, cpu));
  f.out_pcm = floats(io.load("out_pcm", at::kFloat, cpu));
  at::Tensor text = io.load("out_tokens", at::kLong, cpu)[0][0].contiguous();
  std::ifstream in(lm + "/io.json");
  auto j = nlohmann::json::parse(in);
  f.prompt = j.at("prompt").get<std::string>();
  auto pieces = j.at("text_pieces").get<std::vector<std::string>>();
  for (size_t s = 0; s < pieces.size(); ++s) {
    const int64_t id = text[long(s)].item<int64_t>();
    f.has_word.push_back(id != 0 && id != 3);  // EPAD and PAD say nothing
    if (f.has_word.back()) f.words.push_back(spaced(pieces[s]));
    f.pieces.push_back(f.has_word.back() ? spaced(pieces[s]) : "");
  }
  return f;
}

}  // namespace

std::vector<personaplex::text::TimedText> expected_text(const personaplex::text::TextTrackOptions &options,
                                                        GstClockTime start, bool words_only) {
  const Fixture &f = fixture();
  personaplex::text::TextTrack track(options);
  std::vector<personaplex::text::TimedText> all;
  auto keep = [&](const personaplex::text::TextTrack::Output &out) {
    const auto &part = words_only ? out.words : out.items;
    all.insert(all.end(), part.begin(), part.end());
  };
  for (size_t k = 0; k < f.pieces.size(); ++k)
    keep(track.push(f.pieces[k], gint64(start + k * kFrameDuration), gint64(start + (k + 1) * kFrameDuration),
                    gint64(k)));
  keep(track.finish(gint64(start + f.pieces.size() * kFrameDuration)));
  return all;
}

bool have_fixtures() {
  return is_file(fixtures_dir() + "/lm/weights.safetensors") && is_file(fixtures_dir() + "/mimi/weights.safetensors");
}

int run_with_fixtures(int argc, char **argv, Suite *(*make_suite)(), const char *name, const char *file) {
  gst_check_init(&argc, &argv);
  if (!have_fixtures()) {
    g_print("reference fixtures not found (PERSONAPLEX_FIXTURES): skipped\n");
    return 77;
  }
  return gst_check_run_suite(make_suite(), name, file) ? 1 : 0;
}

const Fixture &fixture() {
  static const Fixture f = load_fixture();
  return f;
}

GstElement *make_element(GstBus *bus) {
  const Fixture &f = fixture();
  GstElement *element = gst_element_factory_make("personaplex", nullptr);
  fail_unless(element != nullptr, "no personaplex element: is GST_PLUGIN_PATH set?");
  gst_object_ref_sink(element);
  // The CPU unless PERSONAPLEX_TEST_DEVICE names another device; float32 there
  // too (the reference's outputs are float32).
  const char *device = std::getenv("PERSONAPLEX_TEST_DEVICE");
  gst_util_set_object_arg(G_OBJECT(element), "dtype", "float32");
  gst_util_set_object_arg(G_OBJECT(element), "text-unit", "piece");
  g_object_set(element, "lm-weights", f.lm_weights.c_str(), "lm-config", f.lm_config.c_str(),
               "mimi-weights", f.mimi_weights.c_str(), "mimi-config", f.mimi_config.c_str(),
               "tokenizer", f.tokenizer.c_str(), "voice", f.voice.c_str(), "prompt", f.prompt.c_str(),
               "greedy", TRUE, "device", device && *device ? device : "cpu", nullptr);
  if (bus) gst_element_set_bus(element, bus);
  return element;
}

void copy_fixture_settings(GstElement *element) {
  GstElement *configured = make_element();
  for (const char *name : {"lm-weights", "lm-config", "mimi-weights", "mimi-config", "tokenizer", "voice",
                           "prompt", "greedy", "device", "dtype"}) {
    GValue value = G_VALUE_INIT;
    g_object_get_property(G_OBJECT(configured), name, &value);
    g_object_set_property(G_OBJECT(element), name, &value);
    g_value_unset(&value);
  }
  gst_object_unref(configured);
}

std::string read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

GstHarness *harness(GstElement *element, bool live) {
  static GstStaticPadTemplate any_src = GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
  static GstStaticPadTemplate any_sink = GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
  GstHarness *h = gst_harness_new_empty();
  gst_harness_set_live(h, live);  // before the element starts: it asks then
  gst_harness_add_element_full(h, element, &any_src, "sink", &any_sink, "src");
  gst_harness_set_src_caps_str(h, kCapsF32);
  return h;
}

GstHarness *text_harness(GstElement *element) { return gst_harness_new_with_element(element, nullptr, "text_src"); }

void push_pcm(GstHarness *h, const std::vector<float> &pcm, size_t first, size_t count, size_t chunk,
              GstClockTime start) {
  const size_t end = std::min(pcm.size(), first + count);
  for (size_t at = first; at < end; at += chunk) {
    const size_t n = std::min(chunk, end - at);
    const GstClockTime pts = start + gst_util_uint64_scale_int(at - first, GST_SECOND, kRate);
    fail_unless_equals_int(gst_harness_push(h, f32_buffer(pcm.data() + at, n, pts)), GST_FLOW_OK);
  }
}

std::vector<float> pull_all_f32(GstHarness *h, std::vector<GstBuffer *> *kept) {
  std::vector<float> pcm;
  while (GstBuffer *buffer = gst_harness_try_pull(h)) {
    std::vector<float> part = f32_of(buffer);
    pcm.insert(pcm.end(), part.begin(), part.end());
    if (kept)
      kept->push_back(buffer);
    else
      gst_buffer_unref(buffer);
  }
  return pcm;
}

std::vector<float> frames_of(const std::vector<float> &pcm, size_t first, size_t count) {
  const size_t b = std::min(pcm.size(), first * kFrame), e = std::min(pcm.size(), (first + count) * kFrame);
  return {pcm.begin() + long(b), pcm.begin() + long(e)};
}

double max_diff(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size()) return INFINITY;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
  return d;
}

std::vector<TextItem> pull_text(GstHarness *text, bool *saw_eos, size_t at_least) {
  std::vector<TextItem> items;
  bool eos = false;
  const gint64 deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
  while (true) {
    while (GstEvent *event = gst_harness_try_pull_event(text)) {
      if (GST_EVENT_TYPE(event) == GST_EVENT_GAP) {
        GstClockTime pts, duration;
        gst_event_parse_gap(event, &pts, &duration);
        items.push_back({"", pts, duration, true});
      }
      eos |= GST_EVENT_TYPE(event) == GST_EVENT_EOS;
      gst_event_unref(event);
    }
    // Buffers before an EOS are queued before it.
    while (GstBuffer *buffer = gst_harness_try_pull(text)) {
      GstMapInfo map;
      gst_buffer_map(buffer, &map, GST_MAP_READ);
      items.push_back({std::string(reinterpret_cast<const char *>(map.data), map.size), GST_BUFFER_PTS(buffer),
                       GST_BUFFER_DURATION(buffer), false});
      gst_buffer_unmap(buffer, &map);
      gst_buffer_unref(buffer);
    }
    const bool done = (!saw_eos || eos) && items.size() >= at_least;
    if (done || g_get_monotonic_time() > deadline) break;
    g_usleep(5000);
  }
  if (saw_eos) *saw_eos = eos;
  std::stable_sort(items.begin(), items.end(), [](const TextItem &a, const TextItem &b) { return a.pts < b.pts; });
  return items;
}

bool received_event(GstHarness *h, GstEventType type) {
  bool found = false;
  while (GstEvent *event = gst_harness_try_pull_event(h)) {
    found |= GST_EVENT_TYPE(event) == type;
    gst_event_unref(event);
  }
  return found;
}

GstStructure *pop_element_message(GstBus *bus, const char *name, GstClockTime timeout) {
  while (GstMessage *msg = gst_bus_timed_pop_filtered(bus, timeout, GST_MESSAGE_ELEMENT)) {
    const GstStructure *s = gst_message_get_structure(msg);
    GstStructure *copy = s && gst_structure_has_name(s, name) ? gst_structure_copy(s) : nullptr;
    gst_message_unref(msg);
    if (copy) return copy;
  }
  return nullptr;
}

std::string scratch_dir() {
  // Made by whichever process first asks (a forked test, or the runner), and
  // removed when that process exits; a forked child leaves its parent's alone.
  static std::string dir;
  static pid_t owner;
  if (dir.empty()) {
    gchar *made = g_dir_make_tmp("personaplex-check-XXXXXX", nullptr);
    dir = made;
    g_free(made);
    owner = getpid();
    std::atexit([] {
      std::error_code ignored;
      if (getpid() == owner) std::filesystem::remove_all(dir, ignored);
    });
  }
  return dir;
}

}  // namespace pptest
