// linear-bench: the LM's linear layers alone, per weight format and number
// of rows (conversations in a batch), each timed as the step runs it.
//
//   linear-bench [--device cpu|cuda[:N]] [--config config.json] [--rows 1,16,32,64,128]
//                [--weights bf16,int8,fp8] [--cycle-mib N] [--repeats N]
//
// The shapes are the temporal transformer's four products and the depth
// transformer's (with its input projection) for the configuration (default:
// the released 7B). Each product runs on enough copies of its weights to
// fill --cycle-mib (default 400) MiB, so that the GPU's L2 cache does not hold
// them between calls, as it does not in a step; on CUDA the calls over the
// copies are one captured graph, so that the time is the kernels' and not
// the host's. Prints one JSON object: per rows and shape, each format's
// microseconds a call, weight bytes read per second, and its largest error
// against the fp32 product of the same x and the weights as stored
// (dequantized), relative to each output row's largest value: what the path
// rounds beyond the weights' own rounding. The engine's choices
// that change these products (PERSONAPLEX_8BIT_GEMM, PERSONAPLEX_GEMM_*,
// PERSONAPLEX_NO_CUDA_KERNELS) are read from the
// environment; every PERSONAPLEX_ variable set is echoed.
#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "core/device.h"
#include "core/error.h"
#include "core/graph_cache.h"
#include "lm/config.h"
#include "nn/quantized_linear.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

struct Options {
  std::string device = "cpu", config;
  std::vector<int64_t> rows = {1, 16, 32, 64, 128};
  std::vector<std::string> weights = {"bf16", "int8", "fp8"};
  int64_t cycle_mib = 400, repeats = 20;
};

std::vector<std::string> split_list(const std::string &text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    if (end > start) items.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

Options parse(int argc, char **argv) {
  tools::CommandLine cl("linear-bench",
                        "usage: linear-bench [--device DEV] [--config FILE] [--rows N,N...] "
                        "[--weights bf16,int8,fp8] [--cycle-mib N] [--repeats N]\n");
  cl.parse(argc, argv, {"device", "config", "rows", "weights", "cycle-mib", "repeats"}, {});
  Options o;
  o.device = cl.get("device", o.device);
  o.config = cl.get("config");
  o.rows = cl.positive_list("rows", o.rows);
  if (cl.has("weights")) o.weights = split_list(cl.get("weights"));
  for (const std::string &w : o.weights) cl.check([&] { nn::parse_weight_format(w); }, "--weights: ");
  o.cycle_mib = cl.positive("cycle-mib", o.cycle_mib);
  o.repeats = cl.positive("repeats", o.repeats);
  return o;
}

struct Shape {
  std::string name;
  int64_t n, k;
};

// The products a step runs, named as the weights are.
std::vector<Shape> shapes_of(const lm::LmConfig &c) {
  const nn::TransformerConfig t = c.temporal();
  const int64_t hidden = t.gated_hidden(), dep_hidden = c.depformer_hidden(), d = c.depformer_dim;
  return {{"in_proj", 3 * c.dim, c.dim},         {"out_proj", c.dim, c.dim},
          {"mlp_in", 2 * hidden, c.dim},         {"mlp_out", c.dim, hidden},
          {"depformer_in", d, c.dim},            {"depformer_in_proj", 3 * d, d},
          {"depformer_out_proj", d, d},          {"depformer_mlp_in", 2 * dep_hidden, d},
          {"depformer_mlp_out", d, dep_hidden}};
}

// Microseconds a call of linear(x, w) takes, over copies of w that together
// fill cycle_bytes; null with the reason when the format cannot run here.
nlohmann::json time_linear(const Options &o, const at::Device &device, const Shape &s, int64_t rows,
                           nn::WeightFormat format) {
  const auto options = at::TensorOptions(device).dtype(default_dtype(device));
  at::manual_seed(rows * 7 + s.n);
  const nn::LinearWeight one = nn::quantize(at::randn({s.n, s.k}, options) * 0.02, format, s.name);
  const int64_t bytes = one.nbytes();
  const int64_t copies = std::clamp<int64_t>((o.cycle_mib << 20) / std::max<int64_t>(1, bytes), 2, 4096);
  std::vector<nn::LinearWeight> w(size_t(copies), one);
  for (size_t c = 1; c < w.size(); ++c) {
    w[c].weight = one.weight.clone();
    if (one.quantized()) w[c].scale = one.scale.clone();
  }
  const at::Tensor x = at::randn({rows, s.k}, options);
  const at::Tensor exact = at::linear(x.to(at::kFloat), nn::dequantize(one, at::kFloat));
  const at::Tensor row_max = exact.abs().amax(-1, true).clamp_min(1e-20);
  const double error = ((nn::linear(x, one).to(at::kFloat) - exact).abs() / row_max).max().item<double>();
  auto pass = [&] {
    for (const nn::LinearWeight &wc : w) nn::linear(x, wc);
  };
  GraphCache graphs(device, GraphCache::available(device));
  for (int i = 0; i < 3; ++i) graphs.run({rows}, pass);
  std::vector<double> us;
  for (int64_t r = 0; r < o.repeats; ++r)
    us.push_back(bench::timed(device, [&] { graphs.run({rows}, pass); }) * 1000.0 / double(copies));
  const nlohmann::json t = bench::summary(us);
  const double median = t["median"].get<double>();
  return {{"us", t}, {"weight_bytes", bytes}, {"copies", copies}, {"graph", graphs.graphs() > 0},
          {"max_rel_error", error},
          {"weight_tb_per_s", double(bytes) / (median * 1e-6) / 1e12}};
}

int run(const Options &o) {
  const at::Device device = parse_device(o.device);
  const lm::LmConfig config = o.config.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(o.config);
  nlohmann::json results = nlohmann::json::array();
  for (const int64_t rows : o.rows) {
    for (const Shape &s : shapes_of(config)) {
      nlohmann::json row = {{"rows", rows}, {"shape", s.name}, {"n", s.n}, {"k", s.k}};
      for (const std::string &name : o.weights) {
        const nn::WeightFormat format = nn::parse_weight_format(name);
        try {
          nn::check_weight_format(format, device, default_dtype(device));
          row[name] = time_linear(o, device, s, rows, format);
        } catch (const Error &e) {
          row[name] = {{"error", e.what()}};
        }
      }
      results.push_back(row);
    }
  }
  const nlohmann::json out = {{"device", bench::device_name(device)},
                              {"dtype", std::string(at::toString(default_dtype(device)))},
                              {"cycle_mib", o.cycle_mib},
                              {"repeats", o.repeats},
                              {"choices", bench::environment_choices()},
                              {"results", results}};
  tools::print_json(out);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("linear-bench", [&] { return run(parse(argc, argv)); });
}
