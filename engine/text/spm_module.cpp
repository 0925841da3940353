// The SentencePiece module behind spm_abi.h: no exception leaves it.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "text/spm_abi.h"

struct personaplex_spm {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

void set_error(char *error, size_t size, const std::string &message) {
  if (!error || size == 0) return;
  const size_t n = std::min(size - 1, message.size());
  std::memcpy(error, message.data(), n);
  error[n] = '\0';
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int personaplex_spm_abi_version(void) {
  return PERSONAPLEX_SPM_ABI_VERSION;
}

__attribute__((visibility("default"))) personaplex_spm *personaplex_spm_open(const char *model_path,
                                                                            char *error,
                                                                            size_t error_size) {
  try {
    auto spm = std::make_unique<personaplex_spm>();
    const auto status = spm->processor.Load(model_path);
    if (!status.ok()) {
      set_error(error, error_size, status.ToString());
      return nullptr;
    }
    return spm.release();
  } catch (const std::exception &e) {
    set_error(error, error_size, e.what());
    return nullptr;
  }
}

__attribute__((visibility("default"))) void personaplex_spm_close(personaplex_spm *spm) { delete spm; }

__attribute__((visibility("default"))) int personaplex_spm_vocab_size(const personaplex_spm *spm) {
  return spm->processor.GetPieceSize();
}

__attribute__((visibility("default"))) long personaplex_spm_encode(const personaplex_spm *spm,
                                                                   const char *text,
                                                                   size_t text_size, int *ids,
                                                                   size_t capacity) {
  try {
    std::vector<int> out;
    if (!spm->processor.Encode(std::string(text, text_size), &out).ok()) return -1;
    std::copy_n(out.begin(), std::min(capacity, out.size()), ids);
    return long(out.size());
  } catch (...) {
    return -1;
  }
}

__attribute__((visibility("default"))) long personaplex_spm_id_to_piece(const personaplex_spm *spm,
                                                                        int id, char *buffer,
                                                                        size_t capacity) {
  try {
    if (id < 0 || id >= spm->processor.GetPieceSize()) return -1;
    const std::string &piece = spm->processor.IdToPiece(id);
    std::memcpy(buffer, piece.data(), std::min(capacity, piece.size()));
    return long(piece.size());
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
