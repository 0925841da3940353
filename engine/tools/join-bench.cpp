// join-bench: calls that join a lock-step batch while others talk, without
// a server or a network between them. --talking conversations join first and
// step at the frame rate, each on a thread of its own (random user codes every
// frame of its own clock); once they have talked for --warmup-s seconds,
// --joins more join, one every --join-every-ms, each with a role of its own
// (text prompts of different lengths) after the voice prompt they share,
// and talk from then on too. All talk until --seconds after the first
// join. Prints one JSON object:
//   "gaps_ms": each call's longest wait between two of its results after its
//   first second (80 ms when every step is on time), over the calls; and the
//   calls with a wait over 200 ms;
//   "joins": each join's whole time and its parts (LockstepBatch::JoinTimes);
//   "prompt_cache": whole prompts and voice phases taken from the cache.
// PERSONAPLEX_PREFILL_GIVES_WAY=0 lets the joins' prompts run beside the
// steps instead of between them, to measure one against the other;
// "prefill_together": the passes and chunks of joins' prompts run together
// (PERSONAPLEX_PREFILL_TOGETHER_MS; null when off).
// "warm_prefill_ms" is the warm-up's prompts (on a GPU with every role
// length, unless PERSONAPLEX_WARM_PROMPT_LENGTHS=0: lockstep_batch.h).
//
//   join-bench [--device cpu|cuda[:N]] [--dtype D] [--lm-config FILE]
//       [--weights bf16|int8|fp8] [--kv-cache auto|fp8] [--talking N] [--joins N]
//       [--join-every-ms MS] [--seconds S] [--warmup-s S] [--voice-frames N]
#include <ATen/ATen.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_timing.h"
#include "core/device.h"
#include "lm/kv_format.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "mimi/config.h"
#include "nn/quantized_linear.h"
#include "serving/lockstep_batch.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string device = "cpu", dtype, lm_config, weight_format = "bf16", kv_cache = "auto";
  int64_t talking = 2, joins = 2, join_every_ms = 250, voice_frames = 20;
  double seconds = 4, warmup_s = 2;
};

nlohmann::json prefill_together(const serving::LockstepBatch &batch) {
  const lm::PrefillRendezvous *r = batch.prefill_rendezvous();
  if (!r) return nullptr;
  return {{"window_ms", serving::BatchServer::prefill_together().count() / 1000.0},
          {"passes", r->passes()},
          {"chunks", r->chunks()}};
}

Options parse(int argc, char **argv) {
  tools::CommandLine cl("join-bench",
                        "usage: join-bench [--device DEV] [--dtype DTYPE] [--lm-config FILE]\n"
                        "  [--weights bf16|int8|fp8] [--kv-cache auto|fp8] [--talking N] [--joins N]\n"
                        "  [--join-every-ms MS] [--seconds S] [--warmup-s S] [--voice-frames N]\n");
  cl.parse(argc, argv,
           {"device", "dtype", "lm-config", "weights", "kv-cache", "talking", "joins", "join-every-ms", "seconds",
            "warmup-s", "voice-frames"});
  Options o;
  o.device = cl.get("device", o.device);
  o.dtype = cl.get("dtype");
  o.lm_config = cl.get("lm-config");
  o.weight_format = cl.get("weights", o.weight_format);
  o.kv_cache = cl.get("kv-cache", o.kv_cache);
  o.talking = cl.positive("talking", o.talking);
  o.joins = cl.count("joins", o.joins);
  o.join_every_ms = cl.count("join-every-ms", o.join_every_ms);
  o.seconds = cl.number("seconds", o.seconds);
  o.warmup_s = cl.number("warmup-s", o.warmup_s);
  o.voice_frames = cl.count("voice-frames", o.voice_frames);
  if (o.seconds <= 0 || o.warmup_s < 0) cl.fail("--seconds must be positive, --warmup-s not negative");
  cl.check([&] {
    nn::parse_weight_format(o.weight_format);
    lm::parse_kv_format(o.kv_cache);
  });
  return o;
}

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// The service's voice (one for every call, as most of a service's calls
// share one of a few), then a role of its own: text tokens of a length that
// differs from call to call.
lm::Prompt call_prompt(const lm::LmConfig &c, int64_t call, int64_t voice_frames) {
  lm::Prompt p;
  if (voice_frames > 0) {
    std::mt19937_64 voice_rng{7};
    at::Tensor codes = at::empty({lm::kAudioCodebooks, voice_frames}, at::kLong);
    for (int64_t i = 0; i < codes.numel(); ++i)
      codes.data_ptr<int64_t>()[i] = int64_t(voice_rng() % uint64_t(c.card));
    p.voice.codes = codes;
  }
  std::mt19937_64 rng{uint64_t(1000 + call)};
  const int64_t tokens = 20 + (call * 37) % 80;
  for (int64_t i = 0; i < tokens; ++i) p.text_tokens.push_back(4 + int64_t(rng() % uint64_t(c.text_card - 4)));
  return p;
}

// One call: joins at `join_at`, then submits a frame of random user codes
// every frame of its own clock until `end`; records when each result came.
struct Call {
  int64_t index = 0;
  Clock::time_point join_at, end;
  serving::LockstepBatch::Joined joined;
  double join_ms = 0;
  std::vector<Clock::time_point> results;
  std::string error;

  void run(serving::LockstepBatch &batch, const lm::LmConfig &c, int64_t voice_frames, double frame_ms) {
    std::this_thread::sleep_until(join_at);
    const auto t0 = Clock::now();
    try {
      joined = batch.join(call_prompt(c, index, voice_frames), uint64_t(index));
    } catch (const std::exception &e) {
      error = e.what();
      return;
    }
    join_ms = ms_between(t0, Clock::now());
    std::mt19937_64 rng{uint64_t(index)};
    const auto frame = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(frame_ms));
    // The frame grid starts on the batch's phase, as live elements' do: the
    // calls submit together and share each step (and the batch keeps off
    // the step grid, which is for calls paced by their input).
    const int64_t now = Clock::now().time_since_epoch().count(), f = frame.count();
    const int64_t delay = ((batch.phase(now) - now) % f + f) % f;
    for (auto due = Clock::now() + Clock::duration(delay); due < end; due += frame) {
      std::this_thread::sleep_until(due);
      std::vector<int64_t> codes(size_t(c.user_codebooks()));
      for (auto &code : codes) code = int64_t(rng() % uint64_t(c.card));
      try {
        batch.step(joined.slot, codes);
      } catch (const std::exception &e) {
        error = e.what();
        break;
      }
      results.push_back(Clock::now());
    }
    batch.leave(joined.slot);
  }

  // The longest wait between two results after the first second of
  // results; none when the call talked no longer than that.
  std::optional<double> longest_gap_ms() const {
    std::optional<double> longest;
    for (size_t i = 1; i < results.size(); ++i)
      if (ms_between(results.front(), results[i - 1]) >= 1000)
        longest = std::max(longest.value_or(0.0), ms_between(results[i - 1], results[i]));
    return longest;
  }
};

int run(const Options &o) {
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = o.dtype.empty() ? default_dtype(device) : parse_dtype(o.dtype);
  const lm::LmConfig c = o.lm_config.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(o.lm_config);
  auto model = std::make_shared<const lm::LmModel>(
      lm::random_lm_weights(c, device, dtype, 0, 0.02, nn::parse_weight_format(o.weight_format)));
  const lm::KvFormat kv = lm::parse_kv_format(o.kv_cache);
  if (kv != model->kv_format()) model = model->with_kv_format(kv);
  // The codec's frame: the released Mimi's rate (the LM steps once a frame).
  const double frame_ms = 1000.0 / mimi::MimiConfig().frame_rate;

  const int64_t calls = o.talking + o.joins;
  serving::LockstepBatch batch(model, nullptr, calls, lm::ConversationOptions{});
  // Kernels loaded and graphs captured as a server's warm-up does, before
  // anyone talks.
  const auto warm_from = Clock::now();
  batch.warm_prefill(call_prompt(c, calls, o.voice_frames), 0);  // a role no call has
  const double warm_prefill_ms = std::chrono::duration<double, std::milli>(Clock::now() - warm_from).count();

  std::vector<Call> all{size_t(calls)};
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto first_join = start + std::chrono::milliseconds(int64_t(o.warmup_s * 1000));
  const auto end = first_join + std::chrono::milliseconds(int64_t(o.seconds * 1000));
  for (int64_t i = 0; i < calls; ++i) {
    Call &call = all[size_t(i)];
    call.index = i;
    call.join_at = i < o.talking ? start : first_join + std::chrono::milliseconds((i - o.talking) * o.join_every_ms);
    call.end = end;
  }
  std::vector<std::thread> threads;
  for (Call &call : all) threads.emplace_back([&, each = &call] { each->run(batch, c, o.voice_frames, frame_ms); });
  for (std::thread &t : threads) t.join();

  std::vector<double> gaps, join_ms, queued, prompts, capture, activate;
  int64_t over_200 = 0, failed = 0;
  nlohmann::json errors = nlohmann::json::array();
  for (const Call &call : all) {
    if (!call.error.empty()) {
      ++failed;
      if (errors.size() < 5) errors.push_back(call.error);
      continue;
    }
    if (const std::optional<double> gap = call.longest_gap_ms()) {
      gaps.push_back(*gap);
      over_200 += *gap > 200;
    }
    if (call.index < o.talking) continue;
    join_ms.push_back(call.join_ms);
    queued.push_back(call.joined.times.queued_ms);
    prompts.push_back(call.joined.times.prompts_ms);
    capture.push_back(call.joined.times.capture_ms);
    activate.push_back(call.joined.times.activate_ms);
  }
  nlohmann::json out = {
      {"device", device.str()},
      {"device_name", bench::device_name(device)},
      {"choices", bench::environment_choices()},
      {"dtype", dtype_name(dtype)},
      {"weights", o.weight_format},
      {"kv_cache", lm::kv_format_name(model->kv_format())},
      {"lm_config", o.lm_config.empty() ? "released" : o.lm_config},
      {"talking", o.talking},
      {"joins", o.joins},
      {"join_every_ms", o.join_every_ms},
      {"seconds", o.seconds},
      {"prompts_give_way", serving::LockstepBatch::prompts_give_way(device)},
      {"prompts_beside_step_ms", serving::LockstepBatch::prompts_beside_step().count() / 1000.0},
      {"steps_first", serving::LockstepBatch::steps_first()},
      {"warms_prompt_lengths", serving::LockstepBatch::warms_prompt_lengths(device)},
      {"warm_prefill_ms", warm_prefill_ms},
      {"prefill_workers", serving::LockstepBatch::prefill_workers()},
      {"prefill_together", prefill_together(batch)},
      {"failed", failed},
      {"errors", errors},
      {"steps", batch.steps()},
      {"widest_step", batch.widest_step()},
      {"gaps_ms", bench::summary(gaps)},
      {"calls_with_gap_over_200ms", over_200},
      {"prompt_cache",
       {{"hits", batch.prompt_cache().hits()},
        {"misses", batch.prompt_cache().misses()},
        {"voice_hits", batch.prompt_cache().voice_hits()},
        {"voice_misses", batch.prompt_cache().voice_misses()}}},
      {"join",
       {{"ms", bench::summary(join_ms)},
        {"queued_ms", bench::summary(queued)},
        {"prompts_ms", bench::summary(prompts)},
        {"first_graphs_ms", bench::summary(capture)},
        {"step_wait_ms", bench::summary(activate)}}},
      {"gpu_memory_gib", bench::gpu_memory_gib(device)}};
  tools::print_json(out);
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("join-bench", [&] { return run(parse(argc, argv)); });
}
