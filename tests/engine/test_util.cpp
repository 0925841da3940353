#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <vector>

#include <unistd.h>

#include "test_util.h"

namespace personaplex::test {

namespace {

// The scratch directories this process made, removed when it exits (by the
// process that made them: a forked child leaves its parent's alone).
struct Scratch {
  std::vector<std::filesystem::path> dirs;
  pid_t owner = getpid();
  ~Scratch() {
    if (getpid() != owner) return;
    std::error_code ignored;
    for (const auto &d : dirs) std::filesystem::remove_all(d, ignored);
  }
};

}  // namespace

std::string temp_dir() {
  static Scratch scratch;
  static std::mt19937_64 rng{std::random_device{}()};
  auto dir = std::filesystem::temp_directory_path() / ("personaplex-test-" + std::to_string(rng()));
  std::filesystem::create_directories(dir);
  scratch.dirs.push_back(dir);
  return dir.string();
}

}  // namespace personaplex::test
