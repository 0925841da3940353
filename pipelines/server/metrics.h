// The server's Prometheus metrics (GET /metrics): calls active, started,
// refused and ended; handshake (prompt) time; the personaplex element's step
// time, late and skipped frames, what the prompt cache gave the calls; batch
// sizes; GPU memory. Everything is
// counted in the main thread, so a scrape reads plain numbers and never
// waits on a call.
#pragma once

#include <gst/gst.h>

#include <map>
#include <string>
#include <vector>

namespace ppserver {

// A Prometheus histogram: cumulative buckets, a sum and a count.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  // `value` seen `times` times.
  void observe(double value, guint64 times = 1);
  // The histogram's lines for metric `name` (its HELP and TYPE lines too).
  std::string render(const std::string &name, const std::string &help) const;

 private:
  std::vector<double> bounds_;
  std::vector<guint64> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  guint64 count_ = 0;
};

class Metrics {
 public:
  Metrics();

  // A call took a slot; `kind` is "chat" or "webrtc".
  void call_started(const std::string &kind) { ++started_[kind]; }
  // A call was refused before it started: "busy", "draining", "bad_request".
  void call_refused(const std::string &reason) { ++refused_[reason]; }
  // A call ended with websocket close `code`.
  void call_ended(int code) { ++ended_[code]; }
  // Seconds from a call's start to the end of its prompts.
  void handshake(double seconds) { handshake_.observe(seconds); }
  // Calls that stepped together in one frame, once per second of calls.
  void batch(int calls) { batch_size_.observe(calls); }
  // A personaplex element message of call `call_id` (personaplex-stats,
  // personaplex-started; others are ignored).
  void element_message(const std::string &call_id, const GstStructure *s);
  void call_gone(const std::string &call_id) { last_stats_.erase(call_id); }

  struct Now {
    int active = 0, max_sessions = 0;
    bool draining = false, healthy = true;
    std::string model, device, version;
  };
  // The whole exposition text.
  std::string render(const Now &now) const;

 private:
  struct CallCounters {
    guint64 processed = 0, late = 0, skipped = 0;
  };
  void step_stats(const std::string &call_id, const GstStructure *stats);
  std::map<std::string, guint64> started_, refused_, prompts_;
  std::map<int, guint64> ended_;
  Histogram handshake_, step_time_, batch_size_;
  guint64 frames_ = 0, late_ = 0, skipped_ = 0;
  std::map<std::string, CallCounters> last_stats_;  // per call: counts seen so far
};

}  // namespace ppserver
