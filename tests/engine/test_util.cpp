#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "test_util.h"

namespace personaplex::test {

std::string temp_dir() {
  static std::mt19937_64 rng{std::random_device{}()};
  auto dir = std::filesystem::temp_directory_path() /
             ("personaplex-test-" + std::to_string(rng()));
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace personaplex::test
