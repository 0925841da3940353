// The engine's choices kept for measuring one path against another, named
// in the environment (PERSONAPLEX_CONV_KERNEL=all, ...). Read at each call;
// a captured CUDA graph keeps the path its capture took.
#pragma once

#include <cstdlib>
#include <cstring>

namespace personaplex {

// The value of the environment variable `name`, "" when unset.
inline const char *env_choice(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? v : "";
}

// Whether the environment variable `name` is set to `value`.
inline bool env_choice_is(const char *name, const char *value) { return std::strcmp(env_choice(name), value) == 0; }

}  // namespace personaplex
