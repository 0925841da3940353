// Fuzz target: a voice .pt file (engine/lm/voice.cpp over io/torch_save.h),
// checked against the fixture model's sizes so that good files get through
// to the shape and token checks.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "lm/voice.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const personaplex::lm::LmConfig config = [] {
    personaplex::lm::LmConfig c;  // the fixture model: dim 64, 90 text ids
    c.dim = 64;
    c.text_card = 90;
    return c;
  }();
  try {
    personaplex::lm::read_voice("fuzz.pt", std::string_view(reinterpret_cast<const char *>(data), size), config);
  } catch (const personaplex::Error &) {
  }
  return 0;
}
