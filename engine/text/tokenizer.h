// The text tokenizer (SentencePiece), reached through a small module loaded
// at run time (see spm_abi.h for why). The module is looked for in this
// order: $PERSONAPLEX_SPM_MODULE; beside the program or plugin holding the
// engine, and in ../gst-personaplex from there; the install directory; the
// build directory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace personaplex::text {

// Ids with a fixed meaning in the PersonaPlex text stream.
constexpr int64_t kEndOfPadding = 0;  // EPAD
constexpr int64_t kPad = 3;           // PAD

class Tokenizer {
 public:
  // Throws Error naming the file when it is missing or not a SentencePiece
  // model, or when the module cannot be found or loaded.
  explicit Tokenizer(const std::string &model_path);
  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  int64_t vocab_size() const;
  // UTF-8 text -> ids, without BOS or EOS.
  std::vector<int64_t> encode(const std::string &text) const;
  // The raw piece ("▁word"); throws Error for an id outside the vocabulary.
  std::string piece(int64_t id) const;
  // The piece as text: "▁" becomes a space; "" for EPAD and PAD.
  std::string text(int64_t id) const;
  static bool is_word(int64_t id) { return id != kEndOfPadding && id != kPad; }

  // The module file in use.
  static std::string module_path();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The role prompt as the model expects it: "<system> TEXT <system>" around
// the stripped text, unless already wrapped.
std::string wrap_system_prompt(const std::string &prompt);
// Its tokens; an empty prompt gives none.
std::vector<int64_t> encode_role_prompt(const Tokenizer &tokenizer, const std::string &prompt);

}  // namespace personaplex::text
