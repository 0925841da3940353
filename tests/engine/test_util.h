// Helpers shared by the engine's unit tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <sys/stat.h>

namespace personaplex::test {

// The reference fixture directory, or "" when this checkout has none.
inline std::string fixtures_dir() {
  const char *dir = std::getenv("PERSONAPLEX_FIXTURES");
  struct stat st {};
  if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return "";
  return dir;
}

// A fresh scratch directory for one test.
std::string temp_dir();

}  // namespace personaplex::test

// Skips the calling test when the fixtures are absent.
#define PERSONAPLEX_REQUIRE_FIXTURES()                                              \
  do {                                                                              \
    if (personaplex::test::fixtures_dir().empty())                                  \
      GTEST_SKIP() << "reference fixtures not found (meson option 'fixtures')";     \
  } while (0)
