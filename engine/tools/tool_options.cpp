#include "tool_options.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <sstream>

namespace personaplex::tools {

namespace {

bool contains(const std::vector<std::string> &names, const std::string &name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

CommandLine::CommandLine(std::string program, std::string usage)
    : program_(std::move(program)), usage_(std::move(usage)) {}

void CommandLine::parse(int argc, char **argv, const std::vector<std::string> &options,
                        const std::vector<std::string> &switches, int first, bool positional) {
  for (int i = first; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage_.c_str(), stdout);
      std::exit(0);
    }
    const bool named = a.rfind("--", 0) == 0;
    if (!named && positional) {
      positional_.push_back(a);
      continue;
    }
    const std::string name = named ? a.substr(2) : a;
    if (named && contains(switches, name)) {
      switches_.insert(name);
      continue;
    }
    if (!named || !contains(options, name)) fail("unknown option " + a);
    if (i + 1 >= argc) fail("missing value after " + a);
    values_[name] = argv[++i];
  }
}

void CommandLine::fail(const std::string &why) const {
  std::fprintf(stderr, "%s: %s\n%s", program_.c_str(), why.c_str(), usage_.c_str());
  std::exit(2);
}

void CommandLine::check(const std::function<void()> &parse, const std::string &prefix) const {
  try {
    parse();
  } catch (const std::exception &e) {
    fail(prefix + e.what());
  }
}

std::string CommandLine::get(const std::string &name, const std::string &fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

void CommandLine::require(const std::vector<std::string> &names) const {
  for (const auto &name : names)
    if (!has(name)) fail("--" + name + " is required");
}

int64_t CommandLine::integer(const std::string &name, const std::string &text, int64_t min,
                             const char *what) const {
  try {
    size_t used = 0;
    const long long v = std::stoll(text, &used);
    if (used == text.size() && v >= min) return v;
  } catch (const std::exception &) {
  }
  fail("--" + name + " needs " + what + ", got '" + text + "'");
}

int64_t CommandLine::count(const std::string &name, int64_t fallback) const {
  return has(name) ? integer(name, get(name), 0, "a non-negative integer") : fallback;
}

int64_t CommandLine::positive(const std::string &name, int64_t fallback) const {
  return has(name) ? integer(name, get(name), 1, "a positive integer") : fallback;
}

double CommandLine::number(const std::string &name, double fallback) const {
  const std::string text = get(name);
  if (text.empty()) return fallback;
  try {
    size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception &) {
  }
  fail("--" + name + " needs a number, got '" + text + "'");
}

std::vector<int64_t> CommandLine::positive_list(const std::string &name, std::vector<int64_t> fallback) const {
  if (!has(name)) return fallback;
  std::vector<int64_t> list;
  std::stringstream items(get(name));
  for (std::string item; std::getline(items, item, ',');) list.push_back(integer(name, item, 1, "a positive integer"));
  return list;
}

void print_json(const nlohmann::json &result) { std::cout << result.dump(1) << std::endl; }

int run_main(const char *program, const std::function<int()> &body) {
  try {
    return body();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace personaplex::tools
