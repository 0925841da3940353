// Fuzz target: the header of a safetensors file (engine/io/safetensors.cpp).
// Refusals are Errors; anything else escaping, a crash or a huge allocation
// is a finding.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    personaplex::parse_safetensors_header("fuzz.safetensors", data, size);
  } catch (const personaplex::Error &) {
  }
  return 0;
}
