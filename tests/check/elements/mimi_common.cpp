#include <sys/stat.h>

#include "mimi_common.h"

namespace mimitest {

const char *const kPcmCapsF32 =
    "audio/x-raw, format=F32LE, rate=24000, channels=1, layout=interleaved";
const char *const kPcmCapsS16 =
    "audio/x-raw, format=S16LE, rate=24000, channels=1, layout=interleaved";
const char *const kMimiCaps =
    "audio/x-mimi, rate=24000, channels=1, frame-duration-us=80000, codebooks=8, "
    "codebook-size=2048";

namespace {

// The reference fixtures' tiny configuration: every size small, the frame
// and codebooks those of the released model.
const char *const kTinyConfig = R"({
 "seanet": {"channels": 1, "dimension": 32, "causal": true, "n_filters": 8,
  "n_residual_layers": 1, "activation": "ELU", "compress": 2, "dilation_base": 2,
  "disable_norm_outer_blocks": 0, "kernel_size": 7, "residual_kernel_size": 3,
  "last_kernel_size": 3, "norm": "none", "pad_mode": "constant", "ratios": [8, 6, 5, 4],
  "true_skip": true},
 "transformer": {"d_model": 32, "num_heads": 2, "num_layers": 2, "causal": true,
  "layer_scale": 0.01, "context": 250, "conv_layout": true, "max_period": 10000,
  "gating": "none", "norm": "layer_norm", "positional_embedding": "rope",
  "dim_feedforward": 64, "input_dimension": 32, "output_dimensions": [32]},
 "quantizer": {"dimension": 16, "n_q": 32, "bins": 2048, "input_dimension": 32,
  "output_dimension": 32},
 "sample_rate": 24000, "frame_rate": 12.5, "num_codebooks": 8, "resample_method": "conv"
})";

std::string g_scratch;
ModelFiles g_tiny;
ModelFiles g_fixture;

bool is_file(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string fixtures_mimi_dir() {
  const char *dir = std::getenv("PERSONAPLEX_FIXTURES");
  if (!dir || !*dir) return "";
  std::string mimi = std::string(dir) + "/mimi";
  return is_file(mimi + "/weights.safetensors") ? mimi : "";
}

}  // namespace

void setup() {
  gchar *dir = g_dir_make_tmp("mimi-check-XXXXXX", nullptr);
  g_assert_nonnull(dir);
  g_scratch = dir;
  g_free(dir);
  auto config = personaplex::mimi::MimiConfig::from_json_string(kTinyConfig, "tiny config");
  g_tiny.config = g_scratch + "/tiny-config.json";
  g_tiny.weights = g_scratch + "/tiny-weights.safetensors";
  std::ofstream(g_tiny.config) << config.to_json();
  // Weights ~ N(0, 0.1^2): large enough that the codes follow the audio and
  // the stream's history, small enough that activations stay finite.
  personaplex::mimi::write_random_weights(g_tiny.weights, config, 1234, 0.1);

  const std::string fixtures = fixtures_mimi_dir();
  if (!fixtures.empty()) g_fixture = {fixtures + "/weights.safetensors", fixtures + "/config.json"};
}

void teardown() {
  std::error_code ignored;
  if (!g_scratch.empty()) std::filesystem::remove_all(g_scratch, ignored);
}

const ModelFiles &tiny_model() { return g_tiny; }
const std::string &scratch_dir() { return g_scratch; }

const ModelFiles *fixture_model() {
  if (!g_fixture.weights.empty()) return &g_fixture;
  g_print("reference fixtures not found (PERSONAPLEX_FIXTURES): test skipped\n");
  return nullptr;
}

std::optional<ModelFiles> fixture_model_in(const std::string &dtype) {
  const ModelFiles *fixture = fixture_model();
  if (!fixture) return std::nullopt;
  ModelFiles model = *fixture;
  model.dtype = dtype;
  return model;
}

at::Tensor fixture_tensor(const std::string &name, at::ScalarType dtype) {
  personaplex::SafeTensors io(fixtures_mimi_dir() + "/io.safetensors");
  return io.load(name, dtype, at::Device(at::kCPU)).contiguous();
}

GstElement *make_element(const char *factory, const ModelFiles &model, GstBus *bus) {
  GstElement *element = gst_element_factory_make(factory, nullptr);
  fail_unless(element != nullptr, "no %s element: is GST_PLUGIN_PATH set?", factory);
  gst_object_ref_sink(element);
  // The CPU unless PERSONAPLEX_TEST_DEVICE names another device.
  const char *device = std::getenv("PERSONAPLEX_TEST_DEVICE");
  g_object_set(element, "weights", model.weights.c_str(), "config",
               model.config.empty() ? nullptr : model.config.c_str(), "device",
               device && *device ? device : "cpu", nullptr);
  if (!model.dtype.empty()) gst_util_set_object_arg(G_OBJECT(element), "dtype", model.dtype.c_str());
  if (bus) gst_element_set_bus(element, bus);
  return element;
}

GstHarness *harness(const char *factory, const ModelFiles &model, GstBus *bus) {
  GstElement *element = make_element(factory, model, bus);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_object_unref(element);
  return h;
}

std::vector<float> test_signal(size_t n, unsigned seed) {
  std::vector<float> pcm(n);
  guint32 state = 2463534242u * seed + 1;
  for (size_t i = 0; i < n; ++i) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    const double t = static_cast<double>(i) / kRate;
    const double noise = (state / 4294967296.0 - 0.5) * 0.2;
    pcm[i] = static_cast<float>(0.3 * std::sin(2 * M_PI * (220 + 40 * seed) * t) +
                                0.2 * std::sin(2 * M_PI * 1375 * t * (1 + t)) + noise);
  }
  return pcm;
}

GstBuffer *codes_buffer(const std::vector<guint16> &codes, GstClockTime pts) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, codes.size() * 2, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  for (size_t i = 0; i < codes.size(); ++i) GST_WRITE_UINT16_LE(map.data + 2 * i, codes[i]);
  gst_buffer_unmap(buffer, &map);
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DURATION(buffer) = kFrameDuration;
  return buffer;
}

std::vector<guint16> codes_of(GstBuffer *buffer) {
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_READ);
  std::vector<guint16> codes(map.size / 2);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = GST_READ_UINT16_LE(map.data + 2 * i);
  gst_buffer_unmap(buffer, &map);
  return codes;
}

void push_f32(GstHarness *h, const std::vector<float> &pcm, size_t chunk, size_t first_sample) {
  for (size_t at = 0; at < pcm.size(); at += chunk) {
    const size_t n = MIN(chunk, pcm.size() - at);
    const GstClockTime pts = gst_util_uint64_scale_int(first_sample + at, GST_SECOND, kRate);
    const GstFlowReturn ret = gst_harness_push(h, f32_buffer(pcm.data() + at, n, pts));
    fail_unless_equals_int(ret, GST_FLOW_OK);
  }
}

std::vector<std::vector<guint16>> pull_all_codes(GstHarness *h) {
  std::vector<std::vector<guint16>> frames;
  while (GstBuffer *buffer = gst_harness_try_pull(h)) {
    frames.push_back(codes_of(buffer));
    gst_buffer_unref(buffer);
  }
  return frames;
}

std::vector<float> pull_all_f32(GstHarness *h) {
  std::vector<float> pcm;
  while (GstBuffer *buffer = gst_harness_try_pull(h)) {
    std::vector<float> part = f32_of(buffer);
    pcm.insert(pcm.end(), part.begin(), part.end());
    gst_buffer_unref(buffer);
  }
  return pcm;
}

std::vector<std::vector<guint16>> encode(const ModelFiles &model, const std::vector<float> &pcm,
                                         size_t chunk) {
  GstHarness *h = harness("mimienc", model);
  gst_harness_set_src_caps_str(h, kPcmCapsF32);
  push_f32(h, pcm, chunk);
  fail_unless(gst_harness_push_event(h, gst_event_new_eos()));
  auto frames = pull_all_codes(h);
  gst_harness_teardown(h);
  return frames;
}

void flush_and_restart(GstHarness *h) {
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_start()));
  fail_unless(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  fail_unless(gst_harness_push_event(h, gst_event_new_segment(&segment)));
}

}  // namespace mimitest
