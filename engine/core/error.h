// The engine's exception type: every failure the engine reports to its
// users (bad files, bad config, bad input) is an Error whose message names the
// file, tensor or value at fault.
#pragma once

#include <stdexcept>
#include <string>

namespace personaplex {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string &what) : std::runtime_error(what) {}
};

// What is shared and limited (a batch's slots) is all taken: a later try
// may succeed.
class BusyError : public Error {
 public:
  explicit BusyError(const std::string &what) : Error(what) {}
};

}  // namespace personaplex
