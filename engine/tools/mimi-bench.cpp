// mimi-bench: per-frame streaming encode/decode latency of the Mimi codec.
//
//   mimi-bench [--device cpu|cuda[:N]] [--dtype float32|bfloat16|float16]
//              [--config config.json] [--weights mimi.safetensors]
//              [--frames N] [--warmup N] [--batch 1,8,64] [--profile-frames N]
//
// Without --weights, random weights in the released layout are generated for
// the configuration. Prints one JSON object: median and p99 milliseconds per
// 80 ms frame (one encode_frame / decode_frame call) for each batch size.
// --profile-frames N encodes and then decodes N more frames of the first
// batch size between cudaProfilerStart and cudaProfilerStop, so that a
// profiler started with profiling off (ncu --profile-from-start off) sees
// those frames' kernels alone.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#ifdef PERSONAPLEX_BENCH_CUDART
#include <cuda_profiler_api.h>
#endif

#include "bench_timing.h"
#include "core/device.h"
#include "core/error.h"
#include "mimi/mimi.h"
#include "mimi/random_weights.h"
#include "mimi/state.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

using bench::device_name;
using bench::summary;
using bench::synchronize;
using bench::timed;

struct Options {
  std::string device, dtype, config, weights;
  int64_t frames, warmup, profile_frames;
  std::vector<int64_t> batches;
};

Options parse(int argc, char **argv) {
  tools::CommandLine cl("mimi-bench",
                        "usage: mimi-bench [--device DEV] [--dtype DTYPE] [--config FILE] "
                        "[--weights FILE] [--frames N] [--warmup N] [--batch 1,8,64] [--profile-frames N]\n");
  cl.parse(argc, argv, {"device", "dtype", "config", "weights", "frames", "warmup", "batch", "profile-frames"});
  Options o;
  o.device = cl.get("device", "cpu");
  o.dtype = cl.get("dtype");
  o.config = cl.get("config");
  o.weights = cl.get("weights");
  o.frames = cl.positive("frames", 100);
  o.warmup = cl.count("warmup", 10);
  o.batches = cl.positive_list("batch", {1});
  o.profile_frames = cl.count("profile-frames", 0);
  return o;
}

nlohmann::json bench_batch(const mimi::Mimi &m, int64_t batch, const Options &o) {
  auto state = m.new_state(batch);
  const at::Device dev = m.device();
  at::Tensor pcm = (0.1 * at::randn({o.warmup + o.frames, batch, 1, m.frame_size()})).to(dev);
  std::vector<at::Tensor> codes;
  std::vector<double> enc, dec;
  for (int64_t f = 0; f < o.warmup + o.frames; ++f) {
    double t = timed(dev, [&] { codes.push_back(m.encode_frame(pcm[f], *state)); });
    if (f >= o.warmup) enc.push_back(t);
  }
  for (int64_t f = 0; f < o.warmup + o.frames; ++f) {
    double t = timed(dev, [&] { m.decode_frame(codes[f], *state); });
    if (f >= o.warmup) dec.push_back(t);
  }
  return {{"batch", batch}, {"encode_ms", summary(enc)}, {"decode_ms", summary(dec)}};
}

// Frames for a profiler: a warm state, then encodes and decodes bracketed.
void profile_frames(const mimi::Mimi &m, int64_t batch, int64_t frames) {
  auto state = m.new_state(batch);
  const at::Device dev = m.device();
  at::Tensor pcm = (0.1 * at::randn({1, batch, 1, m.frame_size()})).to(dev);
  at::Tensor codes;
  for (int i = 0; i < 3; ++i) m.decode_frame(codes = m.encode_frame(pcm[0], *state), *state);
  synchronize(dev);
#ifdef PERSONAPLEX_BENCH_CUDART
  if (dev.is_cuda()) cudaProfilerStart();
#endif
  for (int64_t f = 0; f < frames; ++f) codes = m.encode_frame(pcm[0], *state);
  for (int64_t f = 0; f < frames; ++f) m.decode_frame(codes, *state);
  synchronize(dev);
#ifdef PERSONAPLEX_BENCH_CUDART
  if (dev.is_cuda()) cudaProfilerStop();
#endif
}

int run(const Options &o) {
  at::Device device = parse_device(o.device);
  at::ScalarType dtype = o.dtype.empty() ? default_dtype(device) : parse_dtype(o.dtype);
  std::string weights = o.weights, temp;
  if (weights.empty()) {
    mimi::MimiConfig config = o.config.empty() ? mimi::MimiConfig() : mimi::MimiConfig::from_json_file(o.config);
    temp = (std::filesystem::temp_directory_path() /
            ("mimi-bench-" + std::to_string(std::random_device{}()) + ".safetensors"))
               .string();
    mimi::write_random_weights(temp, config);
    weights = temp;
  }
  std::shared_ptr<const mimi::Mimi> m;
  try {
    m = mimi::Mimi::load(weights, o.config, device, dtype);
  } catch (...) {
    if (!temp.empty()) std::filesystem::remove(temp);
    throw;
  }
  if (!temp.empty()) std::filesystem::remove(temp);

  nlohmann::json out = {{"device", device.str()},
                        {"device_name", device_name(device)},
                        {"choices", bench::environment_choices()},
                        {"dtype", dtype_name(dtype)},
                        {"config", o.config.empty() ? "released" : o.config},
                        {"weights", o.weights.empty() ? "random" : o.weights},
                        {"frame_ms", 1000.0 * double(m->frame_size()) / double(m->sample_rate())},
                        {"frames", o.frames},
                        {"warmup", o.warmup},
                        {"threads", at::get_num_threads()}};
  for (int64_t b : o.batches) out["results"].push_back(bench_batch(*m, b, o));
  if (o.profile_frames > 0) profile_frames(*m, o.batches.front(), o.profile_frames);
  tools::print_json(out);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("mimi-bench", [&] { return run(parse(argc, argv)); });
}
