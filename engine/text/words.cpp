#include "text/words.h"

namespace personaplex::text {

std::optional<Word> WordAssembler::push(int64_t token, int64_t step) {
  if (!Tokenizer::is_word(token)) return flush();
  std::string piece = tok_.text(token);
  const bool starts_word = !piece.empty() && piece[0] == ' ';
  std::optional<Word> done;
  if (starts_word || !current_) {
    done = flush();
    current_ = Word{starts_word ? piece.substr(1) : piece, step, step};
  } else {
    current_->text += piece;
    current_->last_step = step;
  }
  return done;
}

std::optional<Word> WordAssembler::flush() {
  std::optional<Word> w;
  std::swap(w, current_);
  if (w && w->text.empty()) return std::nullopt;
  return w;
}

}  // namespace personaplex::text
