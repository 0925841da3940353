// A fuzz target's scratch paths (a file, or an empty directory), removed when
// the process exits: a replay or a fuzzer run leaves nothing behind.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace fuzz {

inline std::vector<std::string> &scratch_paths() {
  static std::vector<std::string> paths;
  return paths;
}

// Returns `path`, to be removed at exit.
inline std::string remove_at_exit(std::string path) {
  auto &paths = scratch_paths();
  if (paths.empty())
    std::atexit([] {
      for (const auto &p : scratch_paths()) std::remove(p.c_str());
    });
  paths.push_back(path);
  return path;
}

}  // namespace fuzz
