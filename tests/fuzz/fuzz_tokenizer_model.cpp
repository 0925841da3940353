// Fuzz target: a SentencePiece model file, loaded by the tokenizer
// (engine/text/tokenizer.cpp, SentencePiece in its module), then used: an
// encode and every piece. The bytes go through a file of this process's own,
// as the tokenizer reads only files.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "scratch.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = [] {
    char name[] = "/tmp/fuzz-tokenizer-XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) std::abort();
    close(fd);
    return fuzz::remove_at_exit(name);
  }();
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  try {
    personaplex::text::Tokenizer tokenizer(path);
    tokenizer.encode("hello world, <system> voice");
    const int64_t n = tokenizer.vocab_size();
    for (int64_t id = 0; id < n && id < 4096; ++id) tokenizer.piece(id);
  } catch (const personaplex::Error &) {
  }
  return 0;
}
