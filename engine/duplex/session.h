// One full-duplex conversation on a shared DuplexModel: the prompts (voice
// and role text), then one step per frame of user audio giving one frame of
// the agent's audio and its text token, as the reference's offline front end
// does. Sizes (frame, rate) come from the model. Not thread-safe: one thread
// at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "duplex/duplex_model.h"
#include "serving/lockstep_batch.h"
#include "lm/conversation.h"
#include "lm/prompt.h"

namespace personaplex::duplex {

struct SessionOptions {
  std::string prompt;      // role text; wrapped in <system> tags when not already
  std::string voice_path;  // a .pt or .wav voice file (see resolve_voice()); "" = none
  uint64_t seed = 0;
  lm::SamplingParams sampling;
  // Keep the prompts in attention beyond the context (see ConversationOptions).
  bool pin_prompt = true;
  // More than 1: step in a LockstepBatch of this many slots, shared with the
  // other sessions of the process on the same model and step options.
  int64_t batch = 1;
  // Before the first conversation, run a few frames of silence through Mimi
  // and the LM (loading the device's kernels, capturing the step graphs),
  // then restart: the first frames are then as fast as the others (on CUDA
  // the first steps take a second or more). Outputs are unchanged.
  bool warm_up = false;
};

struct FrameResult {
  std::vector<float> pcm;  // frame_size samples of agent audio
  int64_t text_id = 0;     // the text token of this frame
  std::string text;        // its piece with "▁" as a space; "" for EPAD and PAD
  int64_t step = 0;        // conversation frame index, from 0 after the prompts
};

// What the last start() spent its time on (a handshake's share of the
// engine), in milliseconds.
struct StartTimes {
  double load_ms = 0;     // the voice read and the role text encoded (0 when kept)
  double warm_up_ms = 0;  // the first start's warm-up
  double prompts_ms = 0;  // the prompts (with a batch: the join, waits included)
  bool prompts_cached = false;  // the prompts came from the batch's prompt cache
  bool voice_cached = false;    // or only the voice's did (a role of its own)
  serving::LockstepBatch::JoinTimes join;  // with a batch: the parts of prompts_ms
};

class Session {
 public:
  // Loads nothing yet: start() reads the voice and runs the prompts.
  Session(std::shared_ptr<const DuplexModel> model, SessionOptions options,
          lm::WarningFn warn = {});
  ~Session();

  // Options for the next start(); the current conversation keeps its own.
  void set_options(SessionOptions options);
  const SessionOptions &options() const { return options_; }

  // (Re)starts the conversation: an empty one, the prompts, fresh Mimi
  // streams. Throws Error on an unreadable voice or a failed step.
  void start();
  // Forgets the conversation; the next process() starts a new one.
  void reset() { started_ = false; }
  bool started() const { return started_; }

  // One frame of user audio (n <= frame_size samples, zero-padded) -> one
  // frame of agent audio and text. Starts the conversation first if needed.
  FrameResult process(const float *pcm, size_t n);

  int64_t frame_size() const { return model_->frame_size(); }
  int64_t sample_rate() const { return model_->sample_rate(); }
  int64_t prompt_steps() const { return prompt_steps_; }  // LM steps the prompts took
  const StartTimes &start_times() const { return times_; }
  int64_t frames() const { return frames_; }             // frames since the start
  const DuplexModel &model() const { return *model_; }
  // The batch this conversation steps in (null when it steps alone).
  const std::shared_ptr<serving::LockstepBatch> &batch() const { return batch_; }

 private:
  void load_prompt();
  lm::ConversationOptions conversation_options() const;
  void leave_batch();
  void start_alone(const lm::ConversationOptions &co);
  void start_in_batch(const lm::ConversationOptions &co);
  // One frame of silence through Mimi and the LM, outputs dropped.
  void warm_frame();
  FrameResult process_in_batch(const float *pcm, size_t n);

  std::shared_ptr<const DuplexModel> model_;
  SessionOptions options_;
  lm::WarningFn warn_;
  std::unique_ptr<lm::Conversation> conv_;  // stepping alone
  std::shared_ptr<serving::LockstepBatch> batch_;    // or in a batch, in slot_
  int64_t slot_ = -1;
  std::unique_ptr<mimi::MimiState> mimi_state_;
  // The prompt of `prompt_for_` (voice read, text encoded), kept across resets.
  lm::Prompt prompt_;
  SessionOptions prompt_for_;
  bool prompt_loaded_ = false;
  bool started_ = false;
  bool warmed_ = false;
  int64_t prompt_steps_ = 0;
  int64_t frames_ = 0;
  StartTimes times_;
};

}  // namespace personaplex::duplex
