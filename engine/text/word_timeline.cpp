#include "text/word_timeline.h"

#include <algorithm>

namespace personaplex::text {

bool is_special_piece(const std::string &piece) {
  std::string p = piece;
  if (!p.empty() && p[0] == ' ') p.erase(0, 1);
  return p.size() > 2 && p.front() == '<' && p.back() == '>' && p.find(' ') == std::string::npos;
}

static std::string trimmed(const std::string &s) {
  const size_t b = s.find_first_not_of(' ');
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(' ') - b + 1);
}

void WordTimeline::complete(int64_t end, bool pause, std::vector<TimedText> *done) {
  if (!current_) return;
  TimedText w = std::move(*current_);
  current_.reset();
  w.text = trimmed(w.text);
  if (w.text.empty()) return;  // a lone "▁"
  w.end = std::max(end, w.start);
  w.before_pause = pause;
  done->push_back(std::move(w));
}

std::vector<TimedText> WordTimeline::push(const std::string &piece, int64_t start, int64_t end, int64_t step) {
  std::vector<TimedText> done;
  if (current_ && start >= current_->end + pause_) complete(current_->end + pause_, true, &done);
  if (piece.empty() || is_special_piece(piece)) return done;
  const bool starts_word = piece[0] == ' ';
  if (current_ && !starts_word) {
    current_->text += piece;
    current_->end = end;
    return done;
  }
  complete(start, false, &done);
  current_ = TimedText{piece, start, end, step, false};
  return done;
}

std::vector<TimedText> WordTimeline::finish(int64_t end) {
  std::vector<TimedText> done;
  if (current_) complete(std::min(end, current_->end + pause_), true, &done);
  return done;
}

std::optional<int64_t> WordTimeline::pending_start() const {
  if (!current_) return std::nullopt;
  return current_->start;
}

}  // namespace personaplex::text
