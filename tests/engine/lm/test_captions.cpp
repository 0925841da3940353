// Words and subtitle cues from a fixed piece sequence (no model, no
// tokenizer): times in milliseconds, one 80 ms frame per piece.
#include <gtest/gtest.h>

#include "text/text_track.h"

using namespace personaplex::text;

namespace {

constexpr int64_t kFrame = 80;

using Pieces = std::vector<std::string>;

// One piece per frame, from frame 0; "" is a pad.
struct Stream {
  std::vector<TimedText> items, words;
  std::vector<int64_t> settled;  // after each frame
};

Stream run(TextTrack &track, const std::vector<std::string> &pieces) {
  Stream r;
  for (size_t k = 0; k < pieces.size(); ++k) {
    auto out = track.push(pieces[k], int64_t(k) * kFrame, int64_t(k + 1) * kFrame, int64_t(k));
    r.items.insert(r.items.end(), out.items.begin(), out.items.end());
    r.words.insert(r.words.end(), out.words.begin(), out.words.end());
    r.settled.push_back(*track.settled());
  }
  auto out = track.finish(int64_t(pieces.size()) * kFrame);
  r.items.insert(r.items.end(), out.items.begin(), out.items.end());
  r.words.insert(r.words.end(), out.words.begin(), out.words.end());
  return r;
}

TextTrackOptions options(TextUnit unit) {
  TextTrackOptions o;
  o.unit = unit;
  o.pause = 800;
  o.cue.max_chars = 20;
  o.cue.min_duration = 1200;
  o.cue.max_duration = 6000;
  return o;
}

std::vector<std::string> pads(size_t n) { return std::vector<std::string>(n, ""); }

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string> &b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST(WordTimeline, JoinsPiecesIntoWordsLastingUntilTheNext) {
  TextTrack track(options(TextUnit::kWord));
  // "<s>" is never shown; "sp" "icy" is one word across a pad; "▁" "5" is "5".
  const Stream r = run(track, Pieces{"<s>", " Hel", "lo", "", " sp", "", "icy", " ", "5", " world."} + pads(12));
  ASSERT_EQ(r.items.size(), 4u);
  EXPECT_EQ(r.items[0].text, "Hello");
  EXPECT_EQ(r.items[0].start, 80);
  EXPECT_EQ(r.items[0].end, 320);  // the next word's start
  EXPECT_EQ(r.items[0].first_step, 1);
  EXPECT_EQ(r.items[1].text, "spicy");
  EXPECT_EQ(r.items[1].start, 320);
  EXPECT_EQ(r.items[1].end, 560);
  EXPECT_EQ(r.items[2].text, "5");
  EXPECT_EQ(r.items[2].start, 560);
  EXPECT_EQ(r.items[2].end, 720);
  EXPECT_EQ(r.items[3].text, "world.");
  EXPECT_EQ(r.items[3].start, 720);
  EXPECT_EQ(r.items[3].end, 800 + 800);  // its piece, then the pause
  EXPECT_TRUE(r.items[3].before_pause);
  EXPECT_FALSE(r.items[2].before_pause);
  EXPECT_EQ(r.words.size(), r.items.size());
  for (const TimedText &w : r.items) EXPECT_EQ(w.text.find_first_of("<> "), std::string::npos) << w.text;
}

TEST(WordTimeline, SpecialPieces) {
  EXPECT_TRUE(is_special_piece("<s>"));
  EXPECT_TRUE(is_special_piece(" </s>"));
  EXPECT_TRUE(is_special_piece("<0x0A>"));
  EXPECT_TRUE(is_special_piece("<unk>"));
  EXPECT_FALSE(is_special_piece("<"));
  EXPECT_FALSE(is_special_piece(" <3"));
  EXPECT_FALSE(is_special_piece("word"));
}

TEST(WordTimeline, EndOfStreamEndsTheWord) {
  TextTrack track(options(TextUnit::kWord));
  const Stream r = run(track, Pieces{" last", "word"});
  ASSERT_EQ(r.items.size(), 1u);
  EXPECT_EQ(r.items[0].text, "lastword");
  EXPECT_EQ(r.items[0].start, 0);
  EXPECT_EQ(r.items[0].end, 160);
}

TEST(TextTrack, PiecesAreTheModelsStream) {
  TextTrack track(options(TextUnit::kPiece));
  const Stream r = run(track, Pieces{" Hel", "lo", "", " you"});
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_EQ(r.items[1].text, "lo");
  EXPECT_EQ(r.items[1].start, 80);
  EXPECT_EQ(r.items[1].end, 160);
  EXPECT_EQ(r.words.size(), 2u);  // words are still told apart
  EXPECT_EQ(r.settled, (std::vector<int64_t>{80, 160, 240, 320}));
}

TEST(TextTrack, SettledNeverPassesAPendingWord) {
  TextTrack track(options(TextUnit::kWord));
  const Stream r = run(track, Pieces{"", " a", "b", "", " c"} + pads(12));
  // Before the first word: the frame's end; then the pending word's start.
  EXPECT_EQ(r.settled[0], 80);
  EXPECT_EQ(r.settled[1], 80);
  EXPECT_EQ(r.settled[3], 80);
  EXPECT_EQ(r.settled[4], 320);
  EXPECT_EQ(r.settled[14], 320);
  // The pause ended "c" at 400 + 800: nothing is pending any more.
  EXPECT_EQ(r.settled[15], 1280);
  EXPECT_EQ(r.settled[16], 1360);
  for (size_t k = 1; k < r.settled.size(); ++k) EXPECT_LE(r.settled[k - 1], r.settled[k]);
}

// Pieces of `frames` frames with the words at the frames given.
static std::vector<std::string> words_at(const std::vector<std::pair<std::string, size_t>> &words, size_t frames) {
  std::vector<std::string> pieces(frames);
  for (const auto &[word, frame] : words) pieces[frame] = " " + word;
  return pieces;
}

TEST(CueBuilder, GroupsWordsIntoTwoLinesAndClosesAtSentenceEnds) {
  TextTrack track(options(TextUnit::kCue));
  const Stream r = run(track, words_at({{"one", 0}, {"two", 3}, {"three", 6}, {"four", 9}, {"five", 12},
                                     {"six", 15}, {"seven", 18}, {"eight", 21}, {"nine", 24},
                                     {"ten.", 30}, {"Yes.", 40}, {"and", 41}, {"more", 42},
                                     {"Bye.", 54}}, 60));
  ASSERT_EQ(r.items.size(), 4u);
  // 20 characters a line, two lines: "nine" does not fit.
  EXPECT_EQ(r.items[0].text, "one two three four\nfive six seven eight");
  EXPECT_EQ(r.items[0].start, 0);
  EXPECT_EQ(r.items[0].end, 24 * 80);  // until "nine" starts
  // "ten." ends a sentence that has lasted the minimum: the cue closes there.
  EXPECT_EQ(r.items[1].text, "nine ten.");
  EXPECT_EQ(r.items[1].start, 24 * 80);
  EXPECT_EQ(r.items[1].end, 40 * 80);
  // "Yes." alone would flash by: the cue stays open and the pause closes
  // it, shown the minimum time.
  EXPECT_EQ(r.items[2].text, "Yes. and more");
  EXPECT_EQ(r.items[2].start, 40 * 80);
  EXPECT_EQ(r.items[2].end, 40 * 80 + 1200);
  // "Bye." starts before that end: its cue waits for it.
  EXPECT_EQ(r.items[3].text, "Bye.");
  EXPECT_EQ(r.items[3].start, 40 * 80 + 1200);
  EXPECT_EQ(r.items[3].end, 40 * 80 + 2400);
  for (size_t k = 1; k < r.items.size(); ++k) EXPECT_LE(r.items[k - 1].end, r.items[k].start);
  EXPECT_EQ(r.words.size(), 14u);
}

TEST(CueBuilder, EveryCueLastsTheMinimumAndAtMostTheMaximum) {
  TextTrack track(options(TextUnit::kCue));
  // A word every 400 ms, never a sentence end: 6 s closes the cues.
  std::vector<std::pair<std::string, size_t>> words;
  for (size_t k = 0; k < 40; ++k) words.push_back({"x", 5 * k});
  words.push_back({"Hi.", 220});
  const Stream r = run(track, words_at(words, 221));
  ASSERT_GE(r.items.size(), 4u);
  for (const TimedText &cue : r.items) {
    EXPECT_GE(cue.end - cue.start, 1200) << cue.text;
    EXPECT_LE(cue.end - cue.start, 6000) << cue.text;
    size_t lines = 1;
    for (char c : cue.text) lines += c == '\n';
    EXPECT_LE(lines, 2u);
  }
  EXPECT_EQ(r.items.back().text, "Hi.");
  EXPECT_EQ(r.items.back().start, 220 * 80);
}

TEST(CueBuilder, CountsCharactersNotBytes) {
  EXPECT_EQ(utf8_length("caf\xC3\xA9"), 4u);
  CueOptions o;
  o.max_chars = 9;
  o.min_duration = 0;
  CueBuilder b(o);
  EXPECT_TRUE(b.push({"caf\xC3\xA9", 0, 80}).empty());
  EXPECT_TRUE(b.push({"menu", 80, 160}).empty());  // "café menu": 9 characters, one line
  auto done = b.finish();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].text, "caf\xC3\xA9 menu");
}
