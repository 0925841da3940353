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

// An environment variable set for a scope, then as it was before (so that
// a whole run under a variable, as an A/B run is, keeps it for the tests
// after).
class ScopedEnv {
 public:
  ScopedEnv(const char *name, const char *value) : name_(name) {
    const char *was = std::getenv(name);
    had_ = was != nullptr;
    if (had_) was_ = was;
    setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_.c_str(), was_.c_str(), 1);
    else
      unsetenv(name_.c_str());
  }
  ScopedEnv(const ScopedEnv &) = delete;
  ScopedEnv &operator=(const ScopedEnv &) = delete;

 private:
  std::string name_, was_;
  bool had_ = false;
};

}  // namespace personaplex::test

// Skips the calling test when the fixtures are absent.
#define PERSONAPLEX_REQUIRE_FIXTURES()                                              \
  do {                                                                              \
    if (personaplex::test::fixtures_dir().empty())                                  \
      GTEST_SKIP() << "reference fixtures not found (meson option 'fixtures')";     \
  } while (0)
