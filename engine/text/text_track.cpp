#include "text/text_track.h"

#include <algorithm>

namespace personaplex::text {

TextTrack::TextTrack(TextTrackOptions options) : o_(options), words_(options.pause), cues_(options.cue) {}

void TextTrack::add_words(std::vector<TimedText> words, Output *out) {
  for (TimedText &w : words) {
    if (o_.unit == TextUnit::kCue)
      for (TimedText &cue : cues_.push(w)) out->items.push_back(std::move(cue));
    else if (o_.unit == TextUnit::kWord)
      out->items.push_back(w);
    out->words.push_back(std::move(w));
  }
}

TextTrack::Output TextTrack::push(const std::string &piece, int64_t start, int64_t end, int64_t step) {
  Output out;
  last_end_ = end;
  if (o_.unit == TextUnit::kPiece && !piece.empty()) out.items.push_back(TimedText{piece, start, end, step, false});
  add_words(words_.push(piece, start, end, step), &out);
  return out;
}

TextTrack::Output TextTrack::finish(int64_t end) {
  Output out;
  add_words(words_.finish(end), &out);
  if (o_.unit == TextUnit::kCue)
    for (TimedText &cue : cues_.finish()) out.items.push_back(std::move(cue));
  last_end_ = std::max(last_end_.value_or(end), end);
  return out;
}

std::optional<int64_t> TextTrack::settled() const {
  if (!last_end_) return std::nullopt;
  int64_t at = *last_end_;
  if (o_.unit == TextUnit::kPiece) return at;
  if (auto s = words_.pending_start()) at = std::min(at, *s);
  if (o_.unit == TextUnit::kCue)
    if (auto s = cues_.pending_start()) at = std::min(at, *s);
  return at;
}

void TextTrack::reset() {
  words_.reset();
  cues_.reset();
  last_end_.reset();
}

}  // namespace personaplex::text
