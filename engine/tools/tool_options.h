// What the command-line programs share: reading their command line (`--name
// value` options among those a program declares, `--name` switches and,
// where a program takes them, positional words; typed values; a usage error
// names the problem and exits 2, `-h`/`--help` prints the usage), printing
// their JSON, and main()'s error report ("PROGRAM: message", exit 1).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace personaplex::tools {

class CommandLine {
 public:
  // `usage`: the text printed after a usage error's first line and by
  // --help ("usage: PROGRAM ...", ending in a newline).
  CommandLine(std::string program, std::string usage);

  // Reads argv[first..]: a value after each of `options`, nothing after each
  // of `switches`; other words are positional when `positional`, else unknown
  // options. A name given twice keeps its last value.
  void parse(int argc, char **argv, const std::vector<std::string> &options,
             const std::vector<std::string> &switches = {}, int first = 1, bool positional = false);

  // "PROGRAM: why" and the usage on stderr, then exit status 2.
  [[noreturn]] void fail(const std::string &why) const;
  // Runs `parse` (the engine's parsing of option values); what it throws is
  // a usage error, `prefix` and its message.
  void check(const std::function<void()> &parse, const std::string &prefix = "") const;

  bool has(const std::string &name) const { return values_.count(name) > 0; }
  bool flag(const std::string &name) const { return switches_.count(name) > 0; }
  std::string get(const std::string &name, const std::string &fallback = "") const;
  // A usage error unless each of `names` was given.
  void require(const std::vector<std::string> &names) const;
  // Typed values, `fallback` when the option is absent; a usage error naming
  // the option and the text when it does not parse.
  int64_t count(const std::string &name, int64_t fallback) const;  // >= 0
  int64_t positive(const std::string &name, int64_t fallback) const;
  double number(const std::string &name, double fallback) const;
  // A comma-separated list of positive integers ("1,8,64").
  std::vector<int64_t> positive_list(const std::string &name, std::vector<int64_t> fallback) const;
  const std::vector<std::string> &positional() const { return positional_; }

 private:
  int64_t integer(const std::string &name, const std::string &text, int64_t min, const char *what) const;

  std::string program_, usage_;
  std::map<std::string, std::string> values_;
  std::set<std::string> switches_;
  std::vector<std::string> positional_;
};

// A benchmark's result on stdout: one JSON object, indented by one space.
void print_json(const nlohmann::json &result);

// main()'s body: its exit status, or 1 after "PROGRAM: message" on stderr
// when it throws.
int run_main(const char *program, const std::function<int()> &body);

}  // namespace personaplex::tools
