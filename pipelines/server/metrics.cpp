#include "metrics.h"

#include <cstdio>
#include <sstream>

#include "gpu_memory.h"

namespace ppserver {
namespace {

std::string number(double v) {
  char text[32];
  g_ascii_formatd(text, sizeof text, "%.6g", v);
  return text;
}

// A label value, escaped as the text format wants.
std::string label(const std::string &v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::ostringstream &out, const char *name, const char *type, const char *help) {
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
}

void gauge(std::ostringstream &out, const char *name, const char *help, double v) {
  header(out, name, "gauge", help);
  out << name << ' ' << number(v) << '\n';
}

// A counter with one label; every value in `always` appears, 0 when unseen.
template <typename Key>
void labelled_counter(std::ostringstream &out, const char *name, const char *help, const char *label_name,
                      const std::map<Key, guint64> &values, const std::vector<Key> &always) {
  std::map<Key, guint64> all = values;
  for (const Key &k : always) all.emplace(k, 0);
  header(out, name, "counter", help);
  for (const auto &kv : all) {
    std::ostringstream key;
    key << kv.first;
    out << name << '{' << label_name << "=\"" << label(key.str()) << "\"} " << kv.second << '\n';
  }
}

guint64 uint_field(const GstStructure *s, const char *name) {
  guint64 v = 0;
  return gst_structure_get_uint64(s, name, &v) ? v : 0;
}

}  // namespace

void Histogram::observe(double value, guint64 times) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  if (i < counts_.size()) counts_[i] += times;
  sum_ += value * double(times);
  count_ += times;
}

std::string Histogram::render(const std::string &name, const std::string &help) const {
  std::ostringstream out;
  out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " histogram\n";
  guint64 cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out << name << "_bucket{le=\"" << number(bounds_[i]) << "\"} " << cumulative << '\n';
  }
  out << name << "_bucket{le=\"+Inf\"} " << count_ << '\n';
  out << name << "_sum " << number(sum_) << '\n' << name << "_count " << count_ << '\n';
  return out.str();
}

Metrics::Metrics()
    : handshake_({0.25, 0.5, 1, 2, 4, 8, 16, 32}),
      step_time_({0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.16, 0.32}),
      batch_size_({1, 2, 4, 8, 16, 32, 64}) {}

void Metrics::element_message(const std::string &call_id, const GstStructure *s) {
  if (gst_structure_has_name(s, "personaplex-stats")) step_stats(call_id, s);
  if (!gst_structure_has_name(s, "personaplex-started")) return;
  const char *from = gst_structure_get_string(s, "from-cache");
  if (from) ++prompts_[from];
}

void Metrics::step_stats(const std::string &call_id, const GstStructure *s) {
  CallCounters now{uint_field(s, "frames-processed"), uint_field(s, "frames-late"), uint_field(s, "frames-skipped")};
  CallCounters &seen = last_stats_[call_id];
  // The element counts since the call's start; take what is new.
  const guint64 frames = now.processed > seen.processed ? now.processed - seen.processed : 0;
  if (now.late > seen.late) late_ += now.late - seen.late;
  if (now.skipped > seen.skipped) skipped_ += now.skipped - seen.skipped;
  double ms = 0;
  // The message gives the interval's mean step time: each of its frames counts it.
  if (frames > 0 && gst_structure_get_double(s, "step-time-ms", &ms)) step_time_.observe(ms / 1000.0, frames);
  frames_ += frames;
  seen = now;
}

std::string Metrics::render(const Now &now) const {
  std::ostringstream out;
  header(out, "personaplex_build_info", "gauge", "The server's version, model and device (always 1)");
  out << "personaplex_build_info{version=\"" << label(now.version) << "\",model=\"" << label(now.model)
      << "\",device=\"" << label(now.device) << "\"} 1\n";
  gauge(out, "personaplex_up", "1 while the model is loaded and the server serves (as /healthz)", now.healthy);
  gauge(out, "personaplex_draining", "1 once the server takes no new calls and waits for the last to end",
        now.draining);
  gauge(out, "personaplex_calls_active", "Calls holding a slot now", now.active);
  gauge(out, "personaplex_calls_max", "Calls at once (--max-sessions)", now.max_sessions);
  labelled_counter<std::string>(out, "personaplex_calls_total", "Calls started, by kind", "kind", started_,
                                {"chat", "webrtc"});
  labelled_counter<std::string>(out, "personaplex_calls_refused_total", "Calls refused before they started, by reason",
                                "reason", refused_, {"busy", "draining", "bad_request"});
  labelled_counter<int>(out, "personaplex_calls_ended_total", "Calls ended, by websocket close code", "code", ended_,
                        {});
  out << handshake_.render("personaplex_handshake_seconds", "From a call's start to the end of its prompts");
  labelled_counter<std::string>(out, "personaplex_prompts_total",
                                "Calls' prompts run, by what the prompt cache gave (prompts, voice: its phase, none)",
                                "from_cache", prompts_, {"prompts", "voice", "none"});
  out << step_time_.render("personaplex_frame_seconds", "Model step time per 80 ms frame (per-second means)");
  out << batch_size_.render("personaplex_batch_size", "Calls stepped together in a frame, sampled once a second");
  header(out, "personaplex_frames_total", "counter", "Frames the model stepped");
  out << "personaplex_frames_total " << frames_ << '\n';
  header(out, "personaplex_frames_late_total", "counter", "Frames whose step ended after their deadline");
  out << "personaplex_frames_late_total " << late_ << '\n';
  header(out, "personaplex_frames_skipped_total", "counter", "Frames skipped to catch up with real time");
  out << "personaplex_frames_skipped_total " << skipped_ << '\n';
  GpuMemory memory;
  if (read_gpu_memory(now.device, &memory)) {
    gauge(out, "personaplex_gpu_memory_used_bytes", "Memory in use on the server's GPU (all processes)",
          double(memory.used));
    gauge(out, "personaplex_gpu_memory_total_bytes", "The server's GPU's memory", double(memory.total));
  }
  return out.str();
}

}  // namespace ppserver
