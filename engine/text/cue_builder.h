// Subtitle cues from timed words: words fill lines of at most `max_chars`
// characters, at most `max_lines` of them; a cue closes at sentence
// punctuation (once it has lasted `min_duration`), at a pause, when the next
// word does not fit, or before it would last longer than `max_duration`.
// Each cue shows for at least `min_duration` (the next one starts no earlier
// than its end), at most `max_duration`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/word_timeline.h"

namespace personaplex::text {

struct CueOptions {
  size_t max_chars = 42;
  size_t max_lines = 2;
  int64_t min_duration = 1'200'000'000;  // in the words' time unit (here ns)
  int64_t max_duration = 6'000'000'000;
};

// Characters of UTF-8 text (code points).
size_t utf8_length(const std::string &text);

class CueBuilder {
 public:
  explicit CueBuilder(CueOptions options) : o_(options) {}

  // A completed word; returns the cues it closed, in order (lines joined by "\n").
  std::vector<TimedText> push(const TimedText &word);
  // End of the stream: the cue in progress, if any.
  std::vector<TimedText> finish();
  // Start of the cue in progress, if any.
  std::optional<int64_t> pending_start() const;
  void reset();

 private:
  bool fits(const std::string &word) const;
  void add(const TimedText &word);
  void close(std::vector<TimedText> *done);

  CueOptions o_;
  std::vector<std::string> lines_;  // empty: no cue open
  int64_t start_ = 0, end_ = 0, first_step_ = 0;
  std::optional<int64_t> shown_until_;  // end of the last cue given out
};

}  // namespace personaplex::text
