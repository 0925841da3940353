// lm-bench: per-step latency of the PersonaPlex LM (one 80 ms frame each).
//
//   lm-bench [--device cpu|cuda[:N]] [--dtype bfloat16|float32] [--config config.json]
//            [--weights model.safetensors] [--steps N] [--warmup N] [--prompt-steps N]
//            [--greedy] [--no-graphs] [--check-graphs] [--weight-format bf16|int8|fp8]
//            [--profile-steps N]
//
// Without --weights, random weights of the configuration (default: the
// released 7B) are built on the device. Runs a prompt of --prompt-steps
// forced steps, then user steps with sampling; prints one JSON object with
// median and p99 milliseconds per step of each kind. --check-graphs also
// runs the steps without CUDA graphs and counts differing output tokens.
// --weight-format int8|fp8 stores the linear weights in 8 bits (see
// nn/quantized_linear.h); "lm_weight_bytes" is the weights' size on the device.
// --profile-steps N runs N more user steps between cudaProfilerStart and
// cudaProfilerStop, so that a profiler started with profiling off (ncu
// --profile-from-start off) sees those steps' kernels alone.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#ifdef PERSONAPLEX_BENCH_CUDART
#include <cuda_profiler_api.h>
#endif

#include "bench_timing.h"
#include "core/device.h"
#include "lm/conversation.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "nn/quantized_linear.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

using bench::summary;
using bench::synchronize;
using bench::timed;

// 0 off CUDA, as this program has always reported.
double gpu_memory_gib(const at::Device &device) {
  const nlohmann::json gib = bench::gpu_memory_gib(device);
  return gib.is_null() ? 0.0 : gib.get<double>();
}

struct Options {
  std::string device = "cpu", dtype, config, weights, weight_format = "bf16";
  int64_t steps = 200, warmup = 20, prompt_steps = 100, profile_steps = 0;
  bool greedy = false, graphs = true, check_graphs = false;
};

Options parse(int argc, char **argv) {
  tools::CommandLine cl("lm-bench",
                        "usage: lm-bench [--device DEV] [--dtype DTYPE] [--config FILE] "
                        "[--weights FILE] [--steps N] [--warmup N] [--prompt-steps N] [--greedy] [--no-graphs]\n"
                        "  [--check-graphs] [--weight-format bf16|int8|fp8] [--profile-steps N]\n");
  cl.parse(argc, argv, {"device", "dtype", "config", "weights", "weight-format", "steps", "warmup", "prompt-steps",
            "profile-steps"},
           {"greedy", "no-graphs", "check-graphs"});
  Options o;
  o.device = cl.get("device", o.device);
  o.dtype = cl.get("dtype");
  o.config = cl.get("config");
  o.weights = cl.get("weights");
  o.weight_format = cl.get("weight-format", o.weight_format);
  o.steps = cl.count("steps", o.steps);
  o.warmup = cl.count("warmup", o.warmup);
  o.prompt_steps = cl.count("prompt-steps", o.prompt_steps);
  o.profile_steps = cl.count("profile-steps", o.profile_steps);
  o.greedy = cl.flag("greedy");
  o.graphs = !cl.flag("no-graphs");
  o.check_graphs = cl.flag("check-graphs");
  return o;
}

int run(const Options &o) {
  at::Device device = parse_device(o.device);
  at::ScalarType dtype = o.dtype.empty() ? default_dtype(device) : parse_dtype(o.dtype);
  lm::LmConfig config = o.config.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(o.config);
  const nn::WeightFormat format = nn::parse_weight_format(o.weight_format);
  auto t0 = std::chrono::steady_clock::now();
  auto model = o.weights.empty()
                   ? std::make_shared<const lm::LmModel>(lm::random_lm_weights(config, device, dtype, 0, 0.02, format))
                   : lm::LmModel::load(o.weights, o.config, device, dtype, format);
  synchronize(device);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  lm::ConversationOptions opts;
  opts.sampling.greedy = o.greedy;
  opts.cuda_graphs = o.graphs;
  std::vector<double> prompt_ms, step_ms;
  std::vector<std::vector<int64_t>> outputs;
  auto converse = [&](lm::Conversation &conv, bool time) {
    lm::StepTokens forced;
    forced.text = 3;
    forced.agent = lm::kSilenceTokens;
    forced.user = lm::kSineTokens;
    for (int64_t s = 0; s < o.prompt_steps; ++s) {
      double ms = timed(device, [&] { conv.step(forced); });
      if (time) prompt_ms.push_back(ms);
    }
    conv.pin_prompt();
    std::vector<int64_t> user(lm::kSineTokens);
    for (int64_t s = 0; s < o.warmup + o.steps; ++s) {
      user[0] = (user[0] + 7) % config.card;
      std::optional<lm::StepResult> r;
      double ms = timed(device, [&] { r = conv.step_user(user); });
      if (time && s >= o.warmup) step_ms.push_back(ms);
      if (r) outputs.push_back(r->tokens);
    }
  };
  lm::Conversation conv(model, opts);
  converse(conv, true);
  const bool graphs_active = conv.cuda_graphs_active();
  if (o.profile_steps > 0) {
    synchronize(device);
#ifdef PERSONAPLEX_BENCH_CUDART
    if (device.is_cuda()) cudaProfilerStart();
#endif
    for (int64_t s = 0; s < o.profile_steps; ++s) conv.step_user(lm::kSineTokens);
    synchronize(device);
#ifdef PERSONAPLEX_BENCH_CUDART
    if (device.is_cuda()) cudaProfilerStop();
#endif
  }
  nlohmann::json check = nullptr;
  if (o.check_graphs) {
    auto with_graphs = std::move(outputs);
    outputs.clear();
    lm::ConversationOptions eager = opts;
    eager.cuda_graphs = false;
    lm::Conversation plain(model, eager);
    converse(plain, false);
    int64_t differ = 0;
    for (size_t i = 0; i < outputs.size() && i < with_graphs.size(); ++i) differ += outputs[i] != with_graphs[i];
    check = {{"steps_compared", std::min(outputs.size(), with_graphs.size())}, {"steps_differing", differ}};
  }
  nlohmann::json out = {{"device", device.str()},
                        {"dtype", dtype_name(dtype)},
                        {"config", o.config.empty() ? "released" : o.config},
                        {"weights", o.weights.empty() ? "random" : o.weights},
                        {"load_s", load_s},
                        {"weight_format", nn::weight_format_name(format)},
                        {"lm_weight_bytes", model->weights().nbytes()},
                        {"gpu_memory_gib", gpu_memory_gib(device)},
                        {"prompt_step_ms", summary(prompt_ms)},
                        {"step_ms", summary(step_ms)},
                        {"steps", o.steps},
                        {"profiled_steps", o.profile_steps},
                        {"cuda_graphs", graphs_active},
                        {"graphs_vs_eager", check}};
  tools::print_json(out);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("lm-bench", [&] { return run(parse(argc, argv)); });
}
