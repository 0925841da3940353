// What the files of the personaplex element share: its instance struct, the
// state beyond its settings, and the functions one concern offers the others
// (gstpersonaplex.cpp: the element, its properties, state changes and pads;
// gstpersonaplexconversation.cpp: the model and the steps both modes take;
// gstpersonaplexoffline.cpp: offline chaining; gstpersonaplexlive.cpp: live
// pacing on the clock; gstduplexoutput.cpp: the output pads).
#pragma once

#include <gst/audio/audio.h>
#include <gst/base/gstadapter.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "duplex/duplex_model.h"
#include "duplex/session.h"
#include "gstduplexoutput.h"
#include "gstframequeue.h"
#include "gstpersonaplex.h"
#include "gstpersonaplexsettings.h"
#include "gststepstats.h"

GST_DEBUG_CATEGORY_EXTERN(gst_personaplex_debug);

namespace gstpersonaplex {

constexpr gint kRate = 24000;

enum class Mode { kUndecided, kOffline, kLive };

// The element's state beyond its settings.
struct Duplex {
  Duplex() : adapter(gst_adapter_new()) { gst_segment_init(&segment, GST_FORMAT_TIME); }
  ~Duplex() { g_object_unref(adapter); }

  // Set up in start(); the session is used by one streaming thread at a time
  // (the sink pad's offline, the task live).
  std::shared_ptr<const personaplex::duplex::DuplexModel> model;
  // Like the model, the shared batch stays until NULL (its memory and CUDA
  // graphs are costly to make again for the next conversation).
  std::shared_ptr<personaplex::serving::LockstepBatch> batch;
  std::string voices_dir;
  std::unique_ptr<personaplex::duplex::Session> session;
  size_t frame = 1920;
  GstClockTime frame_duration = 80 * GST_MSECOND;
  guint64 frames_per_stats = 13;
  std::unique_ptr<DuplexOutput> output;
  StepStats stats;
  std::atomic<bool> reset_pending{false};
  std::atomic<Mode> mode{Mode::kUndecided};
  std::atomic<bool> upstream_probed{false};
  std::atomic<bool> upstream_live{false};

  // Sink side, under the sink pad's stream lock.
  bool have_caps = false;
  GstAudioFormat in_format = GST_AUDIO_FORMAT_F32LE;
  GstSegment segment;
  GstAdapter *adapter;  // offline: F32LE samples of the frame being filled
  GstClockTime next_pts = GST_CLOCK_TIME_NONE;
  bool discont = true;
  std::vector<float> scratch;
  // Offline progress messages (wall-clock microseconds; 0: not started).
  gint64 progress_started = 0, progress_posted = 0;
  GstClockTime progress_first = GST_CLOCK_TIME_NONE;

  // Live: input waiting for the task, and the task's pacing.
  FrameQueue queue;
  std::atomic<uint64_t> dropped{0};
  std::atomic<GstFlowReturn> task_flow{GST_FLOW_OK};
  std::atomic<bool> requery_latency{true};
  std::mutex lock;  // guards the three below
  std::condition_variable changed;
  GstClockID clock_id = nullptr;
  bool playing = false;
  bool flushing = true;
  // The task's own (the task is stopped whenever others touch them).
  bool grid_started = false;
  GstClockTime grid_start = 0;  // running time of slot 0
  guint64 slot = 0;
  GstClockTime upstream_latency = 0;
  // The whole pipeline's latency, from the LATENCY event (NONE until then).
  std::atomic<GstClockTime> pipeline_latency{GST_CLOCK_TIME_NONE};
  bool live_discont = true;
  std::vector<float> live_frame;
  guint32 last_seek_seqnum = GST_SEQNUM_INVALID;
};

}  // namespace gstpersonaplex

struct _GstPersonaPlex {
  GstElement parent;
  GstPad *sinkpad, *srcpad, *textpad;
  gstpersonaplex::DuplexSettings *settings;  // guarded by the object lock
  gstpersonaplex::Duplex *duplex;
};

namespace gstpersonaplex {

// gstpersonaplexconversation.cpp
GstClockTime budget_of(GstPersonaPlex *self);  // the `latency` property
GstClockTime samples_duration(GstPersonaPlex *self, size_t samples);
size_t queue_capacity(GstPersonaPlex *self);  // live frames the budget allows
// READY -> PAUSED: files, model, session, prompts; false after posting an error.
bool start(GstPersonaPlex *self);
// PAUSED -> READY, after the pads are deactivated (the task is stopped).
void stop(GstPersonaPlex *self);
void post_stats(GstPersonaPlex *self, bool force);
// Runs the model on one frame of input (`real` samples, the rest zero);
// false after posting an error.
bool compute_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
                  personaplex::duplex::FrameResult *r);
// Pushes a computed frame: `real` samples of audio at `pts` and its word.
GstFlowReturn push_step(GstPersonaPlex *self, personaplex::duplex::FrameResult &r, size_t real,
                        GstClockTime pts, bool discont);
// One conversation step: compute_step() then push_step().
GstFlowReturn run_step(GstPersonaPlex *self, const float *pcm, size_t real, GstClockTime pts,
                       bool discont);
void reset_conversation(GstPersonaPlex *self);  // the `reset` action signal

// gstpersonaplexoffline.cpp: one step per complete input frame, in the sink
// pad's thread.
GstFlowReturn chain_offline(GstPersonaPlex *self, GstBuffer *buffer);
GstFlowReturn gap_offline(GstPersonaPlex *self, GstEvent *event);
void drain_offline(GstPersonaPlex *self);  // EOS
// A `personaplex-progress` message about once a second (and at the end).
void post_progress(GstPersonaPlex *self, GstClockTime position, bool final);

// gstpersonaplexlive.cpp: a task on the src pad, one step per frame of the
// pipeline clock.
void start_task_if_playing(GstPersonaPlex *self);
void set_playing(GstPersonaPlex *self, bool playing);
void set_flushing(GstPersonaPlex *self, bool flushing);
// Whether upstream is live (and the mode, when not decided yet), once per
// start. A live source may answer only once it has caps: unless `final` (data
// flows), no answer leaves it undecided.
Mode probe_upstream(GstPersonaPlex *self, bool final = true);
GstFlowReturn chain_live(GstPersonaPlex *self, GstBuffer *buffer);

}  // namespace gstpersonaplex
