// The text stream of a conversation at a chosen granularity: pieces as the
// model gives them (for machines), words, or subtitle cues. Fed one piece per
// frame; says what to send and up to when nothing more can come (so that a
// sparse stream can announce its gaps without ever going back in time).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/cue_builder.h"
#include "text/word_timeline.h"

namespace personaplex::text {

enum class TextUnit { kPiece, kWord, kCue };

struct TextTrackOptions {
  TextUnit unit = TextUnit::kWord;
  int64_t pause = 800'000'000;  // silence that ends a word and a cue
  CueOptions cue;
};

class TextTrack {
 public:
  explicit TextTrack(TextTrackOptions options = {});

  struct Output {
    std::vector<TimedText> items;  // what the stream carries, in time order
    std::vector<TimedText> words;  // the words completed (whatever the unit)
  };
  // The piece of frame `step` over [start, end): "" for none.
  Output push(const std::string &piece, int64_t start, int64_t end, int64_t step);
  // End of the stream (or of its speech) at `end`.
  Output finish(int64_t end);
  // Items still to come start at this time or later (the end of the last
  // frame when nothing is pending); nullopt before the first frame.
  std::optional<int64_t> settled() const;
  void reset();
  const TextTrackOptions &options() const { return o_; }

 private:
  void add_words(std::vector<TimedText> words, Output *out);

  TextTrackOptions o_;
  WordTimeline words_;
  CueBuilder cues_;
  std::optional<int64_t> last_end_;
};

}  // namespace personaplex::text
