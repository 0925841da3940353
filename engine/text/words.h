// Text out: turns the model's text tokens, one per step, into words with
// the steps they were spoken at (for timestamps). A piece starting with "▁"
// begins a word; EPAD and PAD end the current one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace personaplex::text {

struct Word {
  std::string text;        // without the leading space
  int64_t first_step = 0;  // step of its first piece
  int64_t last_step = 0;   // step of its last piece
};

class WordAssembler {
 public:
  explicit WordAssembler(const Tokenizer &tokenizer) : tok_(tokenizer) {}

  // The text token of step `step`; returns the word it completed, if any
  // (a word is complete when the next one starts or a pad follows).
  std::optional<Word> push(int64_t token, int64_t step);
  // The word in progress, if any (end of stream).
  std::optional<Word> flush();
  void reset() { current_.reset(); }

 private:
  const Tokenizer &tok_;
  std::optional<Word> current_;
};

}  // namespace personaplex::text
