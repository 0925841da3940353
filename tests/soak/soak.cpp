// Soak and cycle benchmarks on the fixtures' tiny model (CPU), printing JSON.
//
//   soak conversation STEPS   one personaplex conversation of STEPS 80 ms
//                             frames (past the 3,000-step window): resident
//                             memory sampled every 500 steps, output length
//                             against input length.
//   soak cycles N             N NULL -> PLAYING -> NULL cycles of each
//                             element in one process: resident memory and
//                             open descriptors before and after.
//
// Needs PERSONAPLEX_FIXTURES and the plugin on GST_PLUGIN_PATH_1_0.
#include <dirent.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr int kRate = 24000, kFrame = 1920;  // the fixture Mimi's rate and frame

double rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024;
  return 0;
}

int open_fds() {
  int n = 0;
  if (DIR *d = opendir("/proc/self/fd")) {
    while (readdir(d)) ++n;
    closedir(d);
  }
  return n - 3;  // ".", ".." and the directory itself
}

std::string fixture(const char *rel) {
  const char *dir = std::getenv("PERSONAPLEX_FIXTURES");
  return std::string(dir ? dir : "") + "/" + rel;
}

std::string personaplex_props() {
  return "dtype=float32 device=cpu lm-weights=\"" + fixture("lm/weights.safetensors") + "\" lm-config=\"" +
         fixture("lm/config.json") + "\" mimi-weights=\"" + fixture("mimi/weights.safetensors") +
         "\" mimi-config=\"" + fixture("mimi/config.json") + "\" tokenizer=\"" + fixture("lm/tokenizer.model") +
         "\" voice=\"" + fixture("lm/voice.pt") + "\"";
}

std::string mimi_props() {
  return "device=cpu weights=\"" + fixture("mimi/weights.safetensors") + "\" config=\"" +
         fixture("mimi/config.json") + "\"";
}

GstElement *launch(const std::string &description) {
  GError *e = nullptr;
  GstElement *p = gst_parse_launch(description.c_str(), &e);
  if (!p || e) {
    std::fprintf(stderr, "soak: %s\n", e ? e->message : "cannot make the pipeline");
    std::exit(1);
  }
  return p;
}

// Waits for EOS or an error; false on error.
bool run_to_eos(GstElement *pipeline) {
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *m = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE,
                                             GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const bool ok = GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
  if (!ok) {
    GError *e = nullptr;
    gst_message_parse_error(m, &e, nullptr);
    std::fprintf(stderr, "soak: %s\n", e->message);
    g_error_free(e);
  }
  gst_message_unref(m);
  gst_object_unref(bus);
  return ok;
}

struct Counts {
  std::atomic<long> out_samples{0};
  std::vector<std::pair<long, double>> rss;  // (output frame, MB)
  long next_sample = 0;
};

GstFlowReturn on_sample(GstAppSink *sink, gpointer data) {
  auto *c = static_cast<Counts *>(data);
  GstSample *s = gst_app_sink_pull_sample(sink);
  c->out_samples += long(gst_buffer_get_size(gst_sample_get_buffer(s)) / sizeof(float));
  gst_sample_unref(s);
  const long frames = c->out_samples / kFrame;
  if (frames >= c->next_sample) {
    c->rss.emplace_back(frames, rss_mb());
    c->next_sample += 500;
  }
  return GST_FLOW_OK;
}

// STEPS frames of quiet noise, timestamped, then EOS.
void push_input(GstAppSrc *in, long steps) {
  guint32 noise = 1;
  for (long i = 0; i < steps; ++i) {
    GstBuffer *b = gst_buffer_new_allocate(nullptr, kFrame * sizeof(float), nullptr);
    GstMapInfo map;
    gst_buffer_map(b, &map, GST_MAP_WRITE);
    auto *x = reinterpret_cast<float *>(map.data);
    for (int k = 0; k < kFrame; ++k) x[k] = float((noise = noise * 1664525u + 1013904223u) >> 8) / 16777216.0f * 0.1f - 0.05f;
    gst_buffer_unmap(b, &map);
    GST_BUFFER_PTS(b) = gst_util_uint64_scale(guint64(i) * kFrame, GST_SECOND, kRate);
    GST_BUFFER_DURATION(b) = gst_util_uint64_scale(kFrame, GST_SECOND, kRate);
    if (gst_app_src_push_buffer(in, b) != GST_FLOW_OK) break;
  }
  gst_app_src_end_of_stream(in);
}

int conversation(long steps) {
  GstElement *p = launch(
      "appsrc name=in format=time block=true max-bytes=384000 "
      "caps=audio/x-raw,format=F32LE,rate=24000,channels=1,layout=interleaved ! "
      "personaplex name=pp " + personaplex_props() + " ! audio/x-raw,format=F32LE ! "
      "appsink name=out sync=false emit-signals=false "
      "pp.text_src ! fakesink sync=false async=false");
  Counts counts;
  GstElement *out = gst_bin_get_by_name(GST_BIN(p), "out");
  GstAppSinkCallbacks callbacks{};
  callbacks.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(out), &callbacks, &counts, nullptr);
  GstElement *in = gst_bin_get_by_name(GST_BIN(p), "in");
  gst_element_set_state(p, GST_STATE_PLAYING);
  const gint64 t0 = g_get_monotonic_time();
  // The input is pushed from a thread of its own while this one drains the
  // bus: the element's messages (words, stats) must not pile up there.
  struct Feed {
    GstElement *in;
    long steps;
  } feed{in, steps};
  GThread *feeder = g_thread_new("feed", [](gpointer data) -> gpointer {
    auto *f = static_cast<Feed *>(data);
    push_input(GST_APP_SRC(f->in), f->steps);
    return nullptr;
  }, &feed);
  const bool ok = run_to_eos(p);
  if (!ok) gst_element_set_state(p, GST_STATE_NULL);  // unblocks the feeder
  g_thread_join(feeder);
  const double seconds = double(g_get_monotonic_time() - t0) / 1e6;
  gst_element_set_state(p, GST_STATE_NULL);
  // Flat: the largest sample after warm-up (the first 1,000 steps) against
  // the sample at the end of warm-up.
  double warm = 0, peak = 0;
  std::string curve;
  for (const auto &[frame, mb] : counts.rss) {
    curve += (curve.empty() ? "" : ", ") + std::string("[") + std::to_string(frame) + ", " + std::to_string(mb) + "]";
    if (frame >= 1000 && warm == 0) warm = mb;
    if (frame >= 1000 && mb > peak) peak = mb;
  }
  std::printf("{\"benchmark\": \"conversation\", \"steps\": %ld, \"input_samples\": %ld, \"output_samples\": %ld, "
              "\"seconds\": %.1f, \"ms_per_step\": %.2f, \"rss_mb_after_warmup\": %.1f, \"rss_mb_peak_after_warmup\": %.1f, "
              "\"rss_growth_mb\": %.2f, \"rss_curve\": [%s], \"ok\": %s}\n",
              steps, steps * kFrame, counts.out_samples.load(), seconds, 1e3 * seconds / double(steps), warm, peak,
              peak - warm, curve.c_str(), ok && counts.out_samples == steps * kFrame ? "true" : "false");
  gst_object_unref(in);
  gst_object_unref(out);
  gst_object_unref(p);
  return ok && counts.out_samples == steps * kFrame ? 0 : 1;
}

int cycles(int n) {
  const std::vector<std::pair<std::string, std::string>> elements = {
      {"personaplex", "audiotestsrc num-buffers=3 samplesperbuffer=1920 ! audio/x-raw,format=F32LE,rate=24000,channels=1 ! "
                      "personaplex name=pp " + personaplex_props() + " ! fakesink pp.text_src ! fakesink async=false"},
      {"mimienc", "audiotestsrc num-buffers=3 samplesperbuffer=1920 ! audio/x-raw,format=F32LE,rate=24000,channels=1 ! "
                  "mimienc " + mimi_props() + " ! fakesink"},
      {"mimidec", "audiotestsrc num-buffers=3 samplesperbuffer=1920 ! audio/x-raw,format=F32LE,rate=24000,channels=1 ! "
                  "mimienc " + mimi_props() + " ! mimidec " + mimi_props() + " ! fakesink"},
  };
  bool all_ok = true;
  for (const auto &[name, description] : elements) {
    GstElement *p = launch(description);
    auto cycle = [&] {
      gst_element_set_state(p, GST_STATE_PLAYING);
      const bool ok = run_to_eos(p);
      gst_element_set_state(p, GST_STATE_NULL);
      return ok;
    };
    bool ok = true;
    for (int i = 0; i < 10; ++i) ok &= cycle();  // warm-up: the model loaded once
    const double rss0 = rss_mb();
    const int fds0 = open_fds();
    const gint64 t0 = g_get_monotonic_time();
    for (int i = 0; i < n; ++i) ok &= cycle();
    const double seconds = double(g_get_monotonic_time() - t0) / 1e6;
    std::printf("{\"benchmark\": \"cycles\", \"element\": \"%s\", \"cycles\": %d, \"seconds\": %.1f, "
                "\"rss_mb_before\": %.1f, \"rss_mb_after\": %.1f, \"fds_before\": %d, \"fds_after\": %d, \"ok\": %s}\n",
                name.c_str(), n, seconds, rss0, rss_mb(), fds0, open_fds(), ok ? "true" : "false");
    std::fflush(stdout);
    all_ok &= ok;
    gst_object_unref(p);
  }
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  const char *dir = std::getenv("PERSONAPLEX_FIXTURES");
  if (!dir || !g_file_test(dir, G_FILE_TEST_IS_DIR)) {
    std::fprintf(stderr, "soak: the fixtures are not there (PERSONAPLEX_FIXTURES)\n");
    return 77;
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "conversation") return conversation(argc > 2 ? std::atol(argv[2]) : 10000);
  if (mode == "cycles") return cycles(argc > 2 ? std::atoi(argv[2]) : 200);
  std::fprintf(stderr, "usage: soak conversation [STEPS] | soak cycles [N]\n");
  return 2;
}
