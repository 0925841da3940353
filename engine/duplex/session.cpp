#include "duplex/session.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "lm/voice.h"
#include "duplex/voice_audio.h"
#include "mimi/state.h"
#include "text/tokenizer.h"

namespace personaplex::duplex {
namespace {

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

bool ends_with(const std::string &s, const std::string &suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<float> to_vector(const at::Tensor &t) {
  at::Tensor c = t.to(at::kCPU, at::kFloat).contiguous().view({-1});
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

}  // namespace

Session::Session(std::shared_ptr<const DuplexModel> model, SessionOptions options, lm::WarningFn warn)
    : model_(std::move(model)),
      options_(std::move(options)),
      warn_(std::move(warn)),
      mimi_state_(model_->mimi().new_state(1)) {}

Session::~Session() { leave_batch(); }

void Session::leave_batch() {
  if (batch_) batch_->leave(slot_);
  batch_.reset();
  slot_ = -1;
}

lm::ConversationOptions Session::conversation_options() const {
  lm::ConversationOptions co;
  co.seed = options_.seed;
  co.sampling = options_.sampling;
  co.pin_prompt = options_.pin_prompt;
  return co;
}

void Session::set_options(SessionOptions options) { options_ = std::move(options); }

// Reads the voice and encodes the role text, unless already done for them.
void Session::load_prompt() {
  if (prompt_loaded_ && prompt_for_.voice_path == options_.voice_path &&
      prompt_for_.prompt == options_.prompt)
    return;
  prompt_loaded_ = false;
  lm::Prompt p;
  const std::string &voice = options_.voice_path;
  if (ends_with(voice, ".pt"))
    p.voice.stored = lm::load_voice_file(voice, model_->lm()->config());
  else if (!voice.empty())
    p.voice.codes = encode_voice(model_->mimi(), load_voice_audio(voice, sample_rate(), warn_));
  p.text_tokens = text::encode_role_prompt(model_->tokenizer(), options_.prompt);
  prompt_ = std::move(p);
  prompt_for_ = options_;
  prompt_loaded_ = true;
}

namespace {

// Frames of the warm-up: the first runs eagerly, the second captures the
// graphs, the third replays them.
constexpr int kWarmUpFrames = 3;

bool same_steps(const lm::ConversationOptions &a, const lm::ConversationOptions &b) {
  const lm::SamplingParams &x = a.sampling, &y = b.sampling;
  return x.greedy == y.greedy && x.temp_text == y.temp_text && x.top_k_text == y.top_k_text &&
         x.temp_audio == y.temp_audio && x.top_k_audio == y.top_k_audio && a.pin_prompt == b.pin_prompt;
}

}  // namespace

void Session::warm_frame() {
  if (batch_) {
    const std::vector<float> silence(size_t(frame_size()), 0.0f);
    batch_->step_frame(slot_, silence.data(), silence.size());
    return;
  }
  const mimi::Mimi &mimi = model_->mimi();
  at::Tensor codes = mimi.encode_frame(at::zeros({1, 1, frame_size()}, at::kFloat), *mimi_state_)
                         .to(at::kCPU).contiguous();
  const int64_t *c = codes.data_ptr<int64_t>();
  auto out = conv_->step_user({c, c + codes.numel()});
  at::Tensor agent = out ? out->agent_codes() : at::zeros({1, lm::kAudioCodebooks, 1}, at::kLong);
  mimi.decode_frame(agent.to(mimi.device()), *mimi_state_);
}

// A conversation of its own: the previous one reset when it steps the same
// way (its CUDA graphs stay), else a new one.
void Session::start_alone(const lm::ConversationOptions &co) {
  if (conv_ && same_steps(conv_->options(), co)) {
    conv_->reset(co.seed);
  } else {
    conv_.reset();  // its caches go before the new ones come
    conv_ = std::make_unique<lm::Conversation>(model_->lm(), co);
  }
  auto t = std::chrono::steady_clock::now();
  if (options_.warm_up && !warmed_) {
    for (int i = 0; i < kWarmUpFrames; ++i) warm_frame();
    conv_->reset(co.seed);
    warmed_ = true;
  }
  times_.warm_up_ms = ms_since(t);
  t = std::chrono::steady_clock::now();
  lm::run_prompts(*conv_, prompt_, warn_);
  times_.prompts_ms = ms_since(t);
  prompt_steps_ = conv_->steps();
}

// A slot in the shared batch (warmed up in a slot of its own first, unless
// the batch has stepped already: its kernels and graphs are warm then).
void Session::start_in_batch(const lm::ConversationOptions &co) {
  batch_ = serving::LockstepBatch::acquire(model_->lm(), model_->shared_mimi(), options_.batch, co);
  auto t = std::chrono::steady_clock::now();
  if (options_.warm_up && !warmed_) {
    // With this session's prompts: their length sets the span the graphs
    // are captured for, and later joins with them start from the cache.
    batch_->warm_up_once([&] {
      // Every prefill worker's first prompts (later joins then take a
      // tenth of the time), the prompt cache seeded.
      batch_->warm_prefill(prompt_, options_.seed);
      slot_ = batch_->join(prompt_, options_.seed, {}).slot;
      try {
        for (int i = 0; i < kWarmUpFrames; ++i) warm_frame();
      } catch (...) {
        batch_->leave(slot_);
        slot_ = -1;
        throw;
      }
      batch_->leave(slot_);
      slot_ = -1;
      // The graphs of every width the batch may take (a minute at most:
      // a GPU busy with other work may take long, and calls then capture
      // what is missing when they join).
      batch_->wait_prepared(std::chrono::seconds(60));
    });
    warmed_ = true;
  }
  times_.warm_up_ms = ms_since(t);
  t = std::chrono::steady_clock::now();
  const serving::LockstepBatch::Joined j = batch_->join(prompt_, options_.seed, warn_);
  times_.prompts_ms = ms_since(t);
  times_.prompts_cached = j.prompts_cached;
  times_.voice_cached = j.voice_cached;
  times_.join = j.times;
  slot_ = j.slot;
  prompt_steps_ = j.prompt_steps;
}

void Session::start() {
  at::NoGradGuard no_grad;
  started_ = false;
  times_ = StartTimes{};
  const auto t = std::chrono::steady_clock::now();
  load_prompt();
  times_.load_ms = ms_since(t);
  const lm::ConversationOptions co = conversation_options();
  leave_batch();
  if (options_.batch > 1) {
    conv_.reset();
    start_in_batch(co);
  } else {
    start_alone(co);
  }
  // The conversation's audio starts both Mimi streams afresh.
  mimi_state_->reset();
  frames_ = 0;
  started_ = true;
}

FrameResult Session::process(const float *pcm, size_t n) {
  const int64_t F = frame_size();
  if (int64_t(n) > F)
    throw Error("a frame holds at most " + std::to_string(F) + " samples, " + std::to_string(n) + " given");
  if (!started_) start();
  at::NoGradGuard no_grad;
  if (batch_) return process_in_batch(pcm, n);
  const mimi::Mimi &mimi = model_->mimi();
  at::Tensor in = at::zeros({1, 1, F}, at::kFloat);
  std::copy(pcm, pcm + n, in.data_ptr<float>());
  at::Tensor codes = mimi.encode_frame(in, *mimi_state_).to(at::kCPU).contiguous();
  const int64_t *c = codes.data_ptr<int64_t>();
  auto out = conv_->step_user({c, c + codes.numel()});

  FrameResult r;
  r.step = frames_++;
  if (!out) {  // the delays are still filling: nothing to say yet
    r.pcm.assign(size_t(F), 0.0f);
    r.text_id = text::kPad;
    return r;
  }
  r.pcm = to_vector(mimi.decode_frame(out->agent_codes().to(mimi.device()), *mimi_state_));
  r.text_id = out->text();
  r.text = model_->tokenizer().text(r.text_id);
  return r;
}

// The codec runs in the batch too: one batched Mimi call per frame each way
// for all of its conversations.
FrameResult Session::process_in_batch(const float *pcm, size_t n) {
  serving::LockstepBatch::Frame f = batch_->step_frame(slot_, pcm, n);
  FrameResult r;
  r.step = frames_++;
  r.pcm = std::move(f.pcm);
  r.text_id = f.result ? f.result->text() : text::kPad;
  if (f.result) r.text = model_->tokenizer().text(r.text_id);
  return r;
}

}  // namespace personaplex::duplex
