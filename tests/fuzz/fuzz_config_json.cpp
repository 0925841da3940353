// Fuzz target: the LM and Mimi config files (engine/lm/config.cpp,
// engine/mimi/config.cpp), parsed and validated.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "lm/config.h"
#include "mimi/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string text(reinterpret_cast<const char *>(data), size);
  try {
    personaplex::lm::LmConfig::from_json_string(text, "fuzz.json").validate("fuzz.json");
  } catch (const personaplex::Error &) {
  }
  try {
    personaplex::mimi::MimiConfig::from_json_string(text, "fuzz.json");
  } catch (const personaplex::Error &) {
  }
  return 0;
}
