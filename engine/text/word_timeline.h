// Words on the time line: joins the model's text pieces, one per frame, into
// words that start with their first piece and last until the next word
// starts, or until a pause (frames without a new piece) ends the speech.
// Pads and special pieces ("<s>", "</s>", "<unk>", byte pieces) are never
// part of a word. Times are integers of any unit (the element uses ns).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace personaplex::text {

struct TimedText {
  std::string text;
  int64_t start = 0;
  int64_t end = 0;
  int64_t first_step = 0;    // the frame of its first piece
  bool before_pause = false;  // a pause followed it (its end was cut by the pause)
};

// Whether a piece (as Tokenizer::text gives it) is a control or byte piece,
// never shown: "<...>" with no space in it.
bool is_special_piece(const std::string &piece);

class WordTimeline {
 public:
  // `pause`: time without a new piece after which the word in progress ends.
  explicit WordTimeline(int64_t pause) : pause_(pause) {}

  // The piece of the frame [start, end) ("" for a pad; a leading space
  // begins a word). Returns the words it completed, in order.
  std::vector<TimedText> push(const std::string &piece, int64_t start, int64_t end, int64_t step);
  // End of the stream at `end`: the word in progress, if any.
  std::vector<TimedText> finish(int64_t end);
  // Start of the word in progress, if any.
  std::optional<int64_t> pending_start() const;
  void reset() { current_.reset(); }

 private:
  void complete(int64_t end, bool pause, std::vector<TimedText> *done);

  int64_t pause_;
  std::optional<TimedText> current_;  // its end: the end of its last piece
};

}  // namespace personaplex::text
