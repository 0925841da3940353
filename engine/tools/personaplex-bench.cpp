// personaplex-bench: per-frame cost of the whole duplex loop (Mimi encode,
// LM step, Mimi decode) for several conversations served in lock step, with
// a per-stage breakdown, prompt time stepped vs prefilled, and weight load
// time. Prints one JSON object.
//
//   personaplex-bench [--device cpu|cuda[:N]] [--dtype bfloat16|float32]
//       [--fixtures DIR | --lm-config FILE --mimi-config FILE] [--batch 1,8,32,64]
//       [--steps N] [--warmup N] [--voice-frames N] [--text-tokens N]
//       [--context N] [--write-random-weights PATH | --lm-weights FILE]
//       [--weights bf16|int8|fp8] [--kv-cache auto|fp8] [--mimi-dtype float32|bfloat16]
//       [--offload-layers N]
//
// Weights are random: with --write-random-weights the LM's are first
// written to PATH in the released layout (and Mimi's to PATH.mimi), then
// loaded from there (load_s is that load); --lm-weights loads an existing
// LM file (the released one, or one personaplex-make-model wrote) and
// builds Mimi in memory; otherwise both are built in memory. Stage times come from a separate pass that synchronizes the
// device at each stage boundary; the per-frame times do not. With
// --context N, every conversation is first filled to N steps (random given
// tokens, prefilled), so attention runs over that much context. A batch size
// that fails (out of memory) is reported as {"batch": B, "error": ...} and
// the run goes on. "cuda_graphs" per batch size: whether the batched model
// step was replayed as CUDA graphs (PERSONAPLEX_CUDA_GRAPHS=0 turns them off);
// then "frame_ms_replayed" is the steady state: the frames whose step was a
// replay, without those that warmed up or captured a shape first met
// ("frames_not_replayed", once per shape in a process).
// --weights int8|fp8 stores the LM's linear weights in 8 bits (see
// nn/quantized_linear.h); then "weight_format" gives the LM's weight bytes and,
// after the timed runs, the logit error against the bf16 model of the same
// weights over the same forced token columns; with a batch of 17 or more,
// also "logit_error_batched": up to 32 conversations stepped together
// (greedy, the same prompts and user codes for both models), compared while
// their tokens agree.
// --kv-cache fp8 keeps the conversations' KV caches as e4m3 bytes with
// scales (lm/kv_format.h); then "kv_cache" gives the bytes a conversation's
// cache takes and the logit error against the same model with a cache in
// its dtype, over forced steps as long as the context (up to 256).
// --mimi-dtype bfloat16 runs Mimi in bf16 (float32 by default, as the
// reference does); "mimi_dtype" in the JSON says which.
// "gpu_memory_gib" per batch size is the device memory in use after its run,
// the allocator's cache included; "gpu_memory_gib_uncached" the same once
// the cached blocks no tensor uses are given back (with the server alive).
// --offload-layers N keeps the last N temporal layers' weights in host
// memory, uploaded each step (lm::LmWeights::host_layers(); needs the weights
// from a file); "offload" in the JSON gives N and the bytes kept there.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_timing.h"
#include "core/device.h"
#include "core/error.h"
#include "serving/batch.h"
#include "lm/conversation.h"
#include "lm/kv_format.h"
#include "lm/temporal.h"
#include "lm/prompt.h"
#include "lm/random_weights.h"
#include "serving/stage_timer.h"
#include "mimi/mimi.h"
#include "nn/quantized_linear.h"
#include "mimi/random_weights.h"
#include "mimi/state.h"
#include "tool_options.h"

using namespace personaplex;

namespace {

using bench::gpu_memory_gib;
using bench::summary;

struct Options {
  std::string device = "cpu", dtype, fixtures, lm_config, mimi_config, weights_path, lm_weights,
      weight_format = "bf16", kv_cache = "auto", mimi_dtype = "float32";
  std::vector<int64_t> batch;
  int64_t steps = 0, warmup = -1, voice_frames = 20, text_tokens = 40, context = 0, offload_layers = 0;
};

Options parse(int argc, char **argv) {
  tools::CommandLine cl("personaplex-bench",
                        "usage: personaplex-bench [--device DEV] [--dtype DTYPE] [--fixtures DIR]\n"
                        "  [--lm-config FILE] [--mimi-config FILE] [--batch 1,8,32,64] [--steps N] [--warmup N]\n"
                        "  [--voice-frames N] [--text-tokens N] [--context N] [--write-random-weights PATH]\n"
                        "  [--lm-weights FILE] [--weights bf16|int8|fp8] [--kv-cache auto|fp8]\n"
                        "  [--mimi-dtype float32|bfloat16] [--offload-layers N]\n");
  cl.parse(argc, argv,
           {"device", "dtype", "fixtures", "lm-config", "mimi-config", "write-random-weights", "lm-weights",
            "weights", "kv-cache", "mimi-dtype", "offload-layers", "steps", "warmup", "voice-frames", "text-tokens", "context", "batch"});
  Options o;
  o.device = cl.get("device", o.device);
  o.dtype = cl.get("dtype");
  o.fixtures = cl.get("fixtures");
  o.lm_config = cl.get("lm-config");
  o.mimi_config = cl.get("mimi-config");
  o.weights_path = cl.get("write-random-weights");
  o.lm_weights = cl.get("lm-weights");
  o.weight_format = cl.get("weights", o.weight_format);
  o.kv_cache = cl.get("kv-cache", o.kv_cache);
  o.mimi_dtype = cl.get("mimi-dtype", o.mimi_dtype);
  o.steps = cl.count("steps", o.steps);
  o.warmup = cl.count("warmup", o.warmup);
  o.voice_frames = cl.count("voice-frames", o.voice_frames);
  o.text_tokens = cl.count("text-tokens", o.text_tokens);
  o.context = cl.count("context", o.context);
  o.offload_layers = cl.count("offload-layers", o.offload_layers);
  o.batch = cl.positive_list("batch", {});
  cl.check([&] {
    nn::parse_weight_format(o.weight_format);
    lm::parse_kv_format(o.kv_cache);
  });
  cl.check([&] { parse_dtype(o.mimi_dtype); }, "--mimi-dtype: ");
  if (!o.weights_path.empty() && !o.lm_weights.empty())
    cl.fail("--write-random-weights and --lm-weights exclude each other");
  if (o.offload_layers > 0 && o.weights_path.empty() && o.lm_weights.empty())
    cl.fail("--offload-layers needs the weights from a file: --write-random-weights or --lm-weights");
  if (!o.fixtures.empty()) {
    if (o.lm_config.empty()) o.lm_config = o.fixtures + "/lm/config.json";
    if (o.mimi_config.empty()) o.mimi_config = o.fixtures + "/mimi/config.json";
  }
  return o;
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

lm::Prompt make_prompt(const Options &o, const lm::LmConfig &c) {
  lm::Prompt p;
  if (o.voice_frames > 0) p.voice.codes = at::randint(0, c.card, {lm::kAudioCodebooks, o.voice_frames}, at::kLong);
  for (int64_t i = 0; i < o.text_tokens; ++i) p.text_tokens.push_back(4 + i % std::max<int64_t>(1, c.text_card - 4));
  return p;
}

// Prompt time, stepped and prefilled (median of a few runs).
nlohmann::json time_prompts(const std::shared_ptr<const lm::LmModel> &model, const lm::Prompt &prompt,
                            const serving::StageTimer &sync, int64_t runs) {
  nlohmann::json out;
  for (bool prefill : {false, true}) {
    std::vector<double> ms, queued;
    int64_t steps = 0, chunks = 0, chunked = 0;
    for (int64_t r = 0; r < runs; ++r) {
      lm::ConversationOptions opts;
      lm::Conversation conv(model, opts);
      lm::Prompt p = prompt;
      p.prefill = prefill;
      sync.synchronize();
      const double t0 = now_ms();
      lm::run_prompts(conv, p);
      queued.push_back(now_ms() - t0);
      sync.synchronize();
      ms.push_back(now_ms() - t0);
      steps = conv.model_steps();
      chunks = conv.prefill_chunks();
      chunked = conv.prefilled_steps();
    }
    // queued_ms close to ms: the host, not the device, sets the pace.
    out[prefill ? "prefill" : "stepped"] = {{"ms", summary(ms)},    {"queued_ms", summary(queued)},
                                            {"model_steps", steps}, {"chunks", chunks},
                                            {"chunked_steps", chunked}};
  }
  return out;
}

// Fills the conversation to `context` steps with random given tokens (one
// prefill: a causal chunk where it fits the cache, steps past it).
void fill_context(lm::Conversation &conv, int64_t context, uint64_t seed) {
  const lm::LmConfig &c = conv.model().config();
  std::mt19937_64 rng(seed);
  auto draw = [&](int64_t n) { return int64_t(rng() % uint64_t(n)); };
  std::vector<lm::ForcedStep> steps(size_t(std::max<int64_t>(0, context - conv.steps())));
  for (auto &s : steps) {
    s.tokens.text = draw(c.text_card);
    for (int64_t k = 0; k < lm::kAudioCodebooks; ++k) s.tokens.agent.push_back(draw(c.card));
    for (int64_t k = 0; k < c.user_codebooks(); ++k) s.tokens.user.push_back(draw(c.card));
  }
  conv.prefill(steps);
}

// The stage timer installed for a scope, also left when a step throws.
struct Installed {
  explicit Installed(serving::StageTimer &t) : timer(t) { timer.install(); }
  ~Installed() { timer.uninstall(); }
  serving::StageTimer &timer;
};

// The first line of an error, without libtorch's backtrace.
std::string error_line(const std::exception &e) {
  const auto *torch_error = dynamic_cast<const c10::Error *>(&e);
  std::string m = torch_error ? torch_error->what_without_backtrace() : e.what();
  return m.substr(0, m.find('\n'));
}

// B conversations through Mimi encode, the batched LM step and Mimi decode.
nlohmann::json run_batch(const std::shared_ptr<const lm::LmModel> &model, const mimi::Mimi &mimi, int64_t B,
                         const Options &o, int64_t steps, int64_t warmup, serving::StageTimer &timer) {
  const at::Device device = model->device();
  serving::BatchServer server(model, B);
  std::vector<int64_t> slots;
  lm::Prompt prompt;
  prompt.text_tokens = {4, 5, 6};
  for (int64_t b = 0; b < B; ++b) {
    slots.push_back(server.join(prompt, uint64_t(b)));
    fill_context(server.conversation(slots.back()), o.context, uint64_t(b));
  }
  auto enc = mimi.new_state(B), dec = mimi.new_state(B);
  const int64_t frame = mimi.frame_size(), K = mimi.num_codebooks();
  at::Tensor pcm = at::randn({B, 1, frame}, at::TensorOptions().device(device)) * 0.1;
  // The agent's codes gathered on the host as a server does: plain
  // vectors, not one tensor write per code (B x K ops that cost the host
  // milliseconds at batch 64 and are no part of the model's frame).
  std::vector<int64_t> agent(size_t(B * K), 0);
  const int64_t user_codes = model->config().user_codebooks();
  std::vector<double> frame_ms, replayed_ms;
  auto one_frame = [&] {
    at::Tensor codes;
    {
      serving::Stage s("mimi_encode");
      codes = mimi.encode_frame(pcm, *enc).to(at::kCPU).reshape({B, -1}).contiguous();
    }
    std::map<int64_t, std::vector<int64_t>> in;
    const int64_t per = std::min<int64_t>(codes.size(1), user_codes);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t *u = codes.data_ptr<int64_t>() + b * codes.size(1);
      in[slots[size_t(b)]] = {u, u + per};
    }
    auto out = server.step(in);
    for (int64_t b = 0; b < B; ++b) {
      const auto &r = out.at(slots[size_t(b)]);
      if (!r) continue;
      for (int64_t k = 0; k < K; ++k) agent[size_t(b * K + k)] = r->tokens[size_t(1 + k)];
    }
    serving::Stage s("mimi_decode");
    mimi.decode_frame(at::from_blob(agent.data(), {B, K, 1}, at::kLong).to(device, false, true), *dec);
  };
  for (int64_t s = 0; s < warmup; ++s) one_frame();
  for (int64_t s = 0; s < steps; ++s) {
    timer.synchronize();
    const int64_t replays = server.graph_steps();
    const double t0 = now_ms();
    one_frame();
    timer.synchronize();
    frame_ms.push_back(now_ms() - t0);
    // Frames whose step replayed a graph: the steady state, without the
    // one-off warm-up and capture of a shape first met (a span that grew).
    if (server.graph_steps() > replays) replayed_ms.push_back(frame_ms.back());
  }
  // The breakdown: a second pass, synchronized at every stage.
  timer.clear();
  {
    Installed installed(timer);
    for (int64_t s = 0; s < steps; ++s) one_frame();
  }
  nlohmann::json stages;
  for (const auto &[name, ms] : timer.samples()) stages[name] = summary(ms);
  // Graphs: the whole batched model step replayed (stage "graph" then holds
  // what eager runs split into embeddings, temporal, sampling, depformer).
  const bool graphs = server.cuda_graphs_active() && server.graph_steps() > 0;
  nlohmann::json out = {{"batch", B}, {"frame_ms", summary(frame_ms)}, {"stage_ms", stages},
          {"cuda_graphs", graphs}, {"graph_steps", server.graph_steps()},
          {"gpu_memory_gib", gpu_memory_gib(device)}};
  // Without the allocator's cached blocks that no tensor uses (left by
  // earlier runs and the context fill): what this server needs.
  release_cached_memory(device);
  out["gpu_memory_gib_uncached"] = gpu_memory_gib(device);
  if (graphs) {
    out["frame_ms_replayed"] = summary(replayed_ms);
    out["frames_not_replayed"] = int64_t(frame_ms.size() - replayed_ms.size());
  }
  return out;
}

// Logits of `steps` model steps whose every token is given (random columns
// from a fixed seed: the same for any model), fp32 on the CPU: text
// [steps, text_out], audio [steps, dep_q, card].
std::pair<at::Tensor, at::Tensor> forced_logits(const std::shared_ptr<const lm::LmModel> &model, int64_t steps) {
  lm::ConversationOptions opts;
  opts.keep_logits = true;
  opts.full_depformer = true;
  opts.sampling.greedy = true;
  lm::Conversation conv(model, opts);
  const lm::LmConfig &c = model->config();
  std::mt19937_64 rng(1234);
  auto draw = [&](int64_t n) { return int64_t(rng() % uint64_t(n)); };
  std::vector<at::Tensor> text, audio;
  while (conv.model_steps() < steps) {
    lm::StepTokens t;
    t.text = draw(c.text_card);
    for (int64_t k = 0; k < lm::kAudioCodebooks; ++k) t.agent.push_back(draw(c.card));
    for (int64_t k = 0; k < c.user_codebooks(); ++k) t.user.push_back(draw(c.card));
    const int64_t before = conv.model_steps();
    conv.step(t);
    if (conv.model_steps() == before) continue;  // the first call only fills the token ring
    text.push_back(conv.last_text_logits().clone());
    audio.push_back(conv.last_audio_logits().clone());
  }
  return {at::stack(text), at::stack(audio)};
}

// `got` against `ref`: absolute errors, the same over ref's RMS, and the
// fraction of greedy (argmax) choices that agree.
nlohmann::json logit_error(const at::Tensor &got, const at::Tensor &ref) {
  const double rms = ref.pow(2).mean().sqrt().item<double>();
  at::Tensor err = (got - ref).abs();
  const double max_abs = err.max().item<double>(), mean_abs = err.mean().item<double>();
  return {{"max_abs", max_abs},
          {"mean_abs", mean_abs},
          {"reference_rms", rms},
          {"max_rel", max_abs / rms},
          {"mean_rel", mean_abs / rms},
          {"greedy_agree", got.argmax(-1).eq(ref.argmax(-1)).to(at::kFloat).mean().item<double>()}};
}

// B conversations stepped together by a batch server (greedy; random text
// prompts and user codes from a fixed seed: the same for any model), per
// model step: text logits [B, text_out] and audio logits [B, dsteps, card].
// Greedy, each sampled token is its logits' argmax.
struct BatchedTrace {
  std::vector<at::Tensor> text, audio;
};

BatchedTrace batched_trace(const std::shared_ptr<const lm::LmModel> &model, int64_t B, int64_t steps) {
  lm::ConversationOptions opts;
  opts.keep_logits = true;
  opts.sampling.greedy = true;
  serving::BatchServer server(model, B, opts);
  const lm::LmConfig &c = model->config();
  // A different text prompt each (else the rows' first steps are alike and
  // one near tie decides them all).
  std::mt19937_64 rng(4321);
  std::vector<int64_t> slots;
  for (int64_t b = 0; b < B; ++b) {
    lm::Prompt prompt;
    for (int i = 0; i < 8; ++i) prompt.text_tokens.push_back(4 + int64_t(rng() % uint64_t(c.text_card - 4)));
    slots.push_back(server.join(prompt, uint64_t(b)));
  }
  BatchedTrace t;
  while (int64_t(t.text.size()) < steps) {
    std::map<int64_t, std::vector<int64_t>> in;
    for (int64_t slot : slots)
      for (int64_t k = 0; k < c.user_codebooks(); ++k) in[slot].push_back(int64_t(rng() % uint64_t(c.card)));
    const int64_t before = server.conversation(slots[0]).model_steps();
    server.step(in);
    // The first call only fills the token ring, alike for every row.
    if (server.conversation(slots[0]).model_steps() == before) continue;
    std::vector<at::Tensor> text, audio;
    for (int64_t slot : slots) {
      text.push_back(server.conversation(slot).last_text_logits());
      audio.push_back(server.conversation(slot).last_audio_logits());
    }
    t.text.push_back(at::stack(text));
    t.audio.push_back(at::stack(audio));
  }
  return t;
}

// `got` against `ref` where their inputs were the same: a row's text logits
// while every token it sampled so far agrees, and codebook k's while the
// step's text and codebooks before k agree too (each is predicted from
// those).
nlohmann::json batched_logit_error(const BatchedTrace &got, const BatchedTrace &ref) {
  const int64_t B = got.text.front().size(0);
  std::vector<bool> in_sync(size_t(B), true);
  std::vector<at::Tensor> text, ref_text, audio, ref_audio;
  for (size_t i = 0; i < got.text.size(); ++i) {
    // [B, 1 + dsteps]: each row's sampled tokens agree, text then codebooks.
    const at::Tensor same = at::cat({got.text[i].argmax(-1).eq(ref.text[i].argmax(-1)).unsqueeze(1),
                                     got.audio[i].argmax(-1).eq(ref.audio[i].argmax(-1))},
                                    1);
    const at::Tensor agree = same.to(at::kInt).cumprod(1).sum(1);
    for (int64_t b = 0; b < B; ++b) {
      if (!in_sync[size_t(b)]) continue;
      text.push_back(got.text[i][b]);
      ref_text.push_back(ref.text[i][b]);
      const int64_t a = agree[b].item<int64_t>(), codebooks = std::min(a, got.audio[i].size(1));
      if (codebooks > 0) {
        audio.push_back(got.audio[i][b].narrow(0, 0, codebooks));
        ref_audio.push_back(ref.audio[i][b].narrow(0, 0, codebooks));
      }
      if (a < same.size(1)) in_sync[size_t(b)] = false;
    }
  }
  nlohmann::json out = {{"conversations", B},
                        {"steps", got.text.size()},
                        {"text_rows_compared", text.size()},
                        {"text", logit_error(at::stack(text), at::stack(ref_text))}};
  if (!audio.empty()) {
    const at::Tensor a = at::cat(audio), r = at::cat(ref_audio);
    out["audio_rows_compared"] = a.size(0);
    out["audio"] = logit_error(a, r);
  }
  return out;
}

// A quantized model beside `reference`, its unquantized twin: weight bytes
// and the logit error over the same forced steps of one conversation; with
// `batch` conversations (0: none), also theirs stepped together, where the
// products take the many-row paths (nn/quantized_linear.h).
nlohmann::json weight_format_report(const std::shared_ptr<const lm::LmModel> &model,
                                    const std::shared_ptr<const lm::LmModel> &reference, int64_t steps,
                                    int64_t batch) {
  auto [text, audio] = forced_logits(model, steps);
  auto [ref_text, ref_audio] = forced_logits(reference, steps);
  nlohmann::json out = {
      {"format", nn::weight_format_name(model->weight_format())},
      {"lm_weight_bytes", model->weights().nbytes()},
      {"reference_dtype", dtype_name(reference->dtype())},
      {"reference_lm_weight_bytes", reference->weights().nbytes()},
      {"logit_error",
       {{"steps", steps}, {"text", logit_error(text, ref_text)}, {"audio", logit_error(audio, ref_audio)}}}};
  if (batch > 0) {
    const BatchedTrace got = batched_trace(model, batch, steps);
    out["logit_error_batched"] = batched_logit_error(got, batched_trace(reference, batch, steps));
  }
  return out;
}

// Bytes of one conversation's temporal KV cache: keys and values of every
// layer (and their scales in fp8).
int64_t kv_bytes_per_conversation(const lm::LmModel &model) {
  const lm::LmConfig &c = model.config();
  const int64_t slots = lm::kv_allocation(lm::kv_capacity(c)), head_dim = c.dim / c.num_heads;
  const bool fp8 = model.kv_format() == lm::KvFormat::kFp8;
  const int64_t per_vector = fp8 ? head_dim + 4 : head_dim * int64_t(c10::elementSize(model.dtype()));
  return c.num_layers * 2 * c.num_heads * slots * per_vector;
}

// An fp8 KV cache beside the model-dtype one: bytes and the logit error
// over the same forced steps.
nlohmann::json kv_cache_report(const std::shared_ptr<const lm::LmModel> &model, int64_t steps) {
  auto reference = model->with_kv_format(lm::KvFormat::kModelDtype);
  auto [text, audio] = forced_logits(model, steps);
  auto [ref_text, ref_audio] = forced_logits(reference, steps);
  return {{"format", lm::kv_format_name(model->kv_format())},
          {"bytes_per_conversation", kv_bytes_per_conversation(*model)},
          {"reference_bytes_per_conversation", kv_bytes_per_conversation(*reference)},
          {"logit_error",
           {{"steps", steps}, {"text", logit_error(text, ref_text)}, {"audio", logit_error(audio, ref_audio)}}}};
}

// Conversations of the batched logit comparison: as many as the widest
// batch run, at most 32 (memory, with two models loaded); none below 17
// (the products' many-row paths start there).
int64_t logit_batch(const std::vector<int64_t> &batches) {
  const int64_t widest = *std::max_element(batches.begin(), batches.end());
  return widest < 17 ? 0 : std::min<int64_t>(widest, 32);
}

int run(const Options &o) {
  at::Device device = parse_device(o.device);
  at::ScalarType dtype = o.dtype.empty() ? default_dtype(device) : parse_dtype(o.dtype);
  const bool cuda = device.is_cuda();
  std::vector<int64_t> batches = o.batch;
  if (batches.empty()) batches = cuda ? std::vector<int64_t>{1, 8, 32, 64} : std::vector<int64_t>{1, 2};
  const int64_t steps = o.steps > 0 ? o.steps : (cuda ? 100 : 10);
  const int64_t warmup = o.warmup >= 0 ? o.warmup : (cuda ? 10 : 2);
  lm::LmConfig lm_config = o.lm_config.empty() ? lm::LmConfig::released() : lm::LmConfig::from_json_file(o.lm_config);
  mimi::MimiConfig mimi_config = o.mimi_config.empty() ? mimi::MimiConfig() : mimi::MimiConfig::from_json_file(o.mimi_config);
  serving::StageTimer timer(device);
  const nn::WeightFormat format = nn::parse_weight_format(o.weight_format);

  // Weights: written then loaded (timed), or built in memory.
  std::string mimi_path = o.weights_path.empty() ? "" : o.weights_path + ".mimi";
  bool temp_mimi = false;
  if (mimi_path.empty()) {
    char name[] = "/tmp/personaplex-bench-mimi-XXXXXX";
    int fd = mkstemp(name);
    if (fd < 0) throw std::runtime_error("cannot create a temporary file");
    close(fd);
    mimi_path = name;
    temp_mimi = true;
  }
  mimi::write_random_weights(mimi_path, mimi_config, 0);
  const at::ScalarType mimi_dtype = parse_dtype(o.mimi_dtype);
  auto mimi = mimi::Mimi::load(mimi_path, o.mimi_config, device, mimi_dtype);
  if (temp_mimi) std::remove(mimi_path.c_str());
  double write_s = 0;
  // The same weights (file or seed) in any format.
  const std::string lm_file = o.lm_weights.empty() ? o.weights_path : o.lm_weights;
  auto load_lm = [&](nn::WeightFormat f) {
    return lm_file.empty()
               ? std::make_shared<const lm::LmModel>(lm::random_lm_weights(lm_config, device, dtype, 0, 0.02, f))
               : lm::LmModel::load(lm_file, o.lm_config, device, dtype, f, o.offload_layers);
  };
  timer.synchronize();
  double t0 = now_ms();
  if (!o.weights_path.empty()) {
    lm::write_random_lm_weights(o.weights_path, lm_config, dtype);
    write_s = (now_ms() - t0) / 1e3;
    t0 = now_ms();
  }
  std::shared_ptr<const lm::LmModel> model = load_lm(format);
  const lm::KvFormat kv_format = lm::parse_kv_format(o.kv_cache);
  if (kv_format != model->kv_format()) model = model->with_kv_format(kv_format);
  timer.synchronize();
  const double load_s = (now_ms() - t0) / 1e3;

  nlohmann::json prompt = time_prompts(model, make_prompt(o, lm_config), timer, cuda ? 5 : 2);
  nlohmann::json runs = nlohmann::json::array();
  for (int64_t B : batches) {
    try {
      runs.push_back(run_batch(model, *mimi, B, o, steps, warmup, timer));
    } catch (const std::exception &e) {
      // Most likely out of memory: the server is gone with the stack.
      runs.push_back({{"batch", B}, {"error", error_line(e)}});
    }
  }

  // Memory before the reference model of the logit comparison is loaded.
  const nlohmann::json gpu_memory = gpu_memory_gib(device);
  nlohmann::json quantized = nullptr;
  const int64_t logit_steps = 16;
  if (format != nn::WeightFormat::kAsLoaded)
    quantized = weight_format_report(model, load_lm(nn::WeightFormat::kAsLoaded)->with_kv_format(kv_format),
                                     logit_steps, logit_batch(batches));
  nlohmann::json kv_cache = nullptr;
  if (kv_format != lm::KvFormat::kModelDtype)
    kv_cache = kv_cache_report(model, std::clamp<int64_t>(lm_config.context, logit_steps, 256));

  nlohmann::json out = {{"device", device.str()},
                        {"device_name", bench::device_name(device)},
                        {"choices", bench::environment_choices()},
                        {"dtype", dtype_name(dtype)},
                        {"mimi_dtype", dtype_name(mimi_dtype)},
                        {"lm_config", o.lm_config.empty() ? "released" : o.lm_config},
                        {"mimi_config", o.mimi_config.empty() ? "released" : o.mimi_config},
                        {"weights", lm_file.empty() ? "random in memory" : lm_file},
                        {"weights_write_s", write_s},
                        {"load_s", load_s},
                        {"steps", steps},
                        {"warmup", warmup},
                        {"context", o.context},
                        {"prompt", prompt},
                        {"batches", runs},
                        {"gpu_memory_gib", gpu_memory}};
  if (!quantized.is_null()) out["weight_format"] = quantized;
  if (!kv_cache.is_null()) out["kv_cache"] = kv_cache;
  if (o.offload_layers > 0)
    out["offload"] = {{"layers", o.offload_layers},
                      {"host_bytes", model->weights().host_nbytes()},
                      {"device_lm_weight_bytes", model->weights().nbytes() - model->weights().host_nbytes()}};
  tools::print_json(out);
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  return tools::run_main("personaplex-bench", [&] { return run(parse(argc, argv)); });
}
