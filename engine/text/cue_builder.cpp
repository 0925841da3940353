#include "text/cue_builder.h"

#include <algorithm>

namespace personaplex::text {

size_t utf8_length(const std::string &text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xC0) != 0x80;
  return n;
}

static bool ends_sentence(const std::string &word) {
  std::string w = word;
  while (!w.empty() && (w.back() == '"' || w.back() == '\'' || w.back() == ')')) w.pop_back();
  if (w.empty()) return false;
  const char c = w.back();
  return c == '.' || c == '!' || c == '?' || (w.size() >= 3 && w.compare(w.size() - 3, 3, "\xE2\x80\xA6") == 0);
}

bool CueBuilder::fits(const std::string &word) const {
  if (lines_.empty()) return true;
  const size_t last = utf8_length(lines_.back());
  if (last + 1 + utf8_length(word) <= o_.max_chars) return true;
  return lines_.size() < o_.max_lines;
}

void CueBuilder::add(const TimedText &word) {
  if (lines_.empty()) {
    start_ = shown_until_ ? std::max(word.start, *shown_until_) : word.start;
    first_step_ = word.first_step;
    lines_.push_back(word.text);
  } else if (utf8_length(lines_.back()) + 1 + utf8_length(word.text) <= o_.max_chars) {
    lines_.back() += " " + word.text;
  } else {
    lines_.push_back(word.text);
  }
  end_ = std::max(end_, word.end);
}

void CueBuilder::close(std::vector<TimedText> *done) {
  if (lines_.empty()) return;
  TimedText cue;
  for (const std::string &line : lines_) cue.text += (cue.text.empty() ? "" : "\n") + line;
  cue.start = start_;
  cue.first_step = first_step_;
  cue.end = std::max(end_, start_ + o_.min_duration);
  cue.end = std::min(cue.end, start_ + std::max(o_.max_duration, o_.min_duration));
  shown_until_ = cue.end;
  lines_.clear();
  done->push_back(std::move(cue));
}

std::vector<TimedText> CueBuilder::push(const TimedText &word) {
  std::vector<TimedText> done;
  if (!lines_.empty() && (!fits(word.text) || word.end - start_ > o_.max_duration)) close(&done);
  if (lines_.empty()) end_ = 0;
  add(word);
  if (word.before_pause || (ends_sentence(word.text) && end_ - start_ >= o_.min_duration)) close(&done);
  return done;
}

std::vector<TimedText> CueBuilder::finish() {
  std::vector<TimedText> done;
  close(&done);
  return done;
}

std::optional<int64_t> CueBuilder::pending_start() const {
  if (lines_.empty()) return std::nullopt;
  return start_;
}

void CueBuilder::reset() {
  lines_.clear();
  shown_until_.reset();
}

}  // namespace personaplex::text
