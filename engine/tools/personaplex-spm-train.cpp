// personaplex-spm-train KEY=VALUE...: trains a SentencePiece model with
// spm_train's options (input=, model_prefix=, vocab_size=, ...). A program
// of its own because SentencePiece cannot share a process with libtorch (see
// engine/text/spm_abi.h); personaplex-make-model runs it.
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <string>
#include <unordered_map>

int main(int argc, char **argv) {
  std::unordered_map<std::string, std::string> kwargs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "personaplex-spm-train: expected KEY=VALUE, got '%s'\n", argv[i]);
      return 2;
    }
    kwargs[arg.substr(0, eq)] = arg.substr(eq + 1);
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs);
  if (!status.ok()) {
    std::fprintf(stderr, "personaplex-spm-train: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
