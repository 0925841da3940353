#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "lm_fixture.h"
#include "text/tokenizer.h"
#include "text/words.h"

using namespace personaplex;
using namespace personaplex::text;

namespace {
std::string model_path() { return test::lm_dir() + "/tokenizer.model"; }
}  // namespace

TEST(Tokenizer, EncodesTheRolePromptAsTheReference) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Tokenizer tok(model_path());
  EXPECT_EQ(tok.vocab_size(), 90);
  test::LmIo io = test::lm_io();
  EXPECT_EQ(encode_role_prompt(tok, io.prompt), io.prompt_tokens);
  EXPECT_EQ(encode_role_prompt(tok, "  " + io.prompt + "\n"), io.prompt_tokens);
  EXPECT_EQ(encode_role_prompt(tok, wrap_system_prompt(io.prompt)), io.prompt_tokens);
  EXPECT_TRUE(encode_role_prompt(tok, "").empty());
}

TEST(Tokenizer, WrapsOnlyWhenNeeded) {
  EXPECT_EQ(wrap_system_prompt(" Be kind. "), "<system> Be kind. <system>");
  EXPECT_EQ(wrap_system_prompt("<system> Be kind. <system>"), "<system> Be kind. <system>");
}

TEST(Tokenizer, PiecesAndText) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Tokenizer tok(model_path());
  const auto ids = tok.encode("options");
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(tok.piece(ids[0]), "\xE2\x96\x81options");
  EXPECT_EQ(tok.text(ids[0]), " options");
  EXPECT_EQ(tok.text(kPad), "");
  EXPECT_EQ(tok.text(kEndOfPadding), "");
  EXPECT_FALSE(Tokenizer::is_word(0));
  EXPECT_FALSE(Tokenizer::is_word(3));
  EXPECT_THROW(tok.piece(90), Error);
  EXPECT_THROW(tok.piece(-1), Error);
}

TEST(Tokenizer, MissingOrCorruptModelIsAnError) {
  EXPECT_THROW(Tokenizer("/nonexistent/tokenizer.model"), Error);
  const std::string bad = test::temp_dir() + "/bad.model";
  std::ofstream(bad) << "this is not a sentencepiece model";
  try {
    Tokenizer t(bad);
    FAIL() << "accepted a corrupt model";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("bad.model"), std::string::npos) << e.what();
  }
}

TEST(Words, AssemblesPiecesIntoTimedWords) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Tokenizer tok(model_path());
  const auto spicy = tok.encode("spicy"), options = tok.encode("options");
  ASSERT_EQ(spicy.size(), 1u);
  // A piece without a leading "▁": continues the current word.
  int64_t cont = -1;
  for (int64_t id = 4; id < tok.vocab_size() && cont < 0; ++id)
    if (tok.piece(id).rfind("\xE2\x96\x81", 0) != 0 && tok.piece(id)[0] != '<') cont = id;
  ASSERT_GE(cont, 0);
  WordAssembler w(tok);
  EXPECT_FALSE(w.push(kPad, 0));
  EXPECT_FALSE(w.push(spicy[0], 1));
  EXPECT_FALSE(w.push(cont, 2));
  auto done = w.push(options[0], 3);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->text, "spicy" + tok.text(cont));
  EXPECT_EQ(done->first_step, 1);
  EXPECT_EQ(done->last_step, 2);
  done = w.push(kEndOfPadding, 4);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->text, "options");
  EXPECT_EQ(done->first_step, 3);
  EXPECT_FALSE(w.flush());
}
