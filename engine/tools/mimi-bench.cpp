// mimi-bench: per-frame streaming encode/decode latency of the Mimi codec.
//
//   mimi-bench [--device cpu|cuda[:N]] [--dtype float32|bfloat16|float16]
//              [--config config.json] [--weights mimi.safetensors]
//              [--frames N] [--warmup N] [--batch 1,8,64]
//
// Without --weights, random weights in the released layout are generated for
// the configuration. Prints one JSON object: median and p99 milliseconds per
// 80 ms frame (one encode_frame / decode_frame call) for each batch size.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "core/device.h"
#include "core/error.h"
#include "mimi/mimi.h"
#include "mimi/random_weights.h"
#include "mimi/state.h"

using namespace personaplex;

namespace {

using bench::device_name;
using bench::summary;
using bench::timed;

struct Options {
  std::string device = "cpu", dtype, config, weights;
  int64_t frames = 100, warmup = 10;
  std::vector<int64_t> batches = {1};
};

[[noreturn]] void usage(const std::string &why) {
  std::fprintf(stderr,
               "mimi-bench: %s\nusage: mimi-bench [--device DEV] [--dtype DTYPE] [--config FILE] "
               "[--weights FILE] [--frames N] [--warmup N] [--batch 1,8,64]\n",
               why.c_str());
  std::exit(2);
}

int64_t positive(const std::string &flag, const std::string &text) {
  try {
    size_t used = 0;
    long long v = std::stoll(text, &used);
    if (used == text.size() && v > 0) return v;
  } catch (const std::exception &) {
  }
  usage(flag + " needs a positive integer, got '" + text + "'");
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) usage("missing value after " + a);
    std::string v = argv[++i];
    if (a == "--device") o.device = v;
    else if (a == "--dtype") o.dtype = v;
    else if (a == "--config") o.config = v;
    else if (a == "--weights") o.weights = v;
    else if (a == "--frames") o.frames = positive(a, v);
    else if (a == "--warmup") o.warmup = std::stoll(v) >= 0 ? std::stoll(v) : 0;
    else if (a == "--batch") {
      o.batches.clear();
      std::stringstream ss(v);
      for (std::string item; std::getline(ss, item, ',');) o.batches.push_back(positive(a, item));
    } else usage("unknown option " + a);
  }
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
                        {"dtype", dtype_name(dtype)},
                        {"config", o.config.empty() ? "released" : o.config},
                        {"weights", o.weights.empty() ? "random" : o.weights},
                        {"frame_ms", 1000.0 * double(m->frame_size()) / double(m->sample_rate())},
                        {"frames", o.frames},
                        {"warmup", o.warmup},
                        {"threads", at::get_num_threads()}};
  for (int64_t b : o.batches) out["results"].push_back(bench_batch(*m, b, o));
  std::cout << out.dump(1) << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "mimi-bench: %s\n", e.what());
    return 1;
  }
}
