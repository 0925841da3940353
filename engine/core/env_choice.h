// The engine's choices kept for measuring one path against another, named
// in the environment (PERSONAPLEX_CONV_KERNEL=all, ...). Read at each call;
// a captured CUDA graph keeps the path its capture took.
#pragma once

#include <cstdlib>
#include <cstring>
#include <optional>

namespace personaplex {

// The value of the environment variable `name`, "" when unset.
inline const char *env_choice(const char *name) {
  const char *v = std::getenv(name);
  return v != nullptr ? v : "";
}

// Whether the environment variable `name` is set to `value`.
inline bool env_choice_is(const char *name, const char *value) { return std::strcmp(env_choice(name), value) == 0; }

// The environment variable `name` as a number, when set and a number whole
// ("4", "2.5"; not "", "4x").
inline std::optional<double> env_number(const char *name) {
  const char *v = env_choice(name);
  char *end = nullptr;
  const double x = std::strtod(v, &end);
  if (*v == '\0' || *end != '\0') return std::nullopt;
  return x;
}

}  // namespace personaplex
