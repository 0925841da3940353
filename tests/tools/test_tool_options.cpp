// The tools' shared command-line reader: values, switches and positional
// words as declared; typed reads; every usage error exits 2 naming the
// problem, --help exits 0 with the usage.
#include <gtest/gtest.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/tool_options.h"

using personaplex::tools::CommandLine;

namespace {

const char *kUsage = "usage: prog [--n N] [--list 1,2] [--x X] [--on] WORDS\n";

// Parses `args` (after the program name) as a program declaring --n, --list,
// --x, the switch --on, and positional words when `positional`.
CommandLine parsed(std::vector<std::string> args, bool positional = false) {
  args.insert(args.begin(), "prog");
  std::vector<char *> argv;
  for (auto &a : args) argv.push_back(a.data());
  CommandLine cl("prog", kUsage);
  cl.parse(int(argv.size()), argv.data(), {"n", "list", "x"}, {"on"}, 1, positional);
  return cl;
}

TEST(ToolOptions, ReadsValuesSwitchesAndWords) {
  const CommandLine cl = parsed({"--n", "7", "a", "--on", "--x", "1.5", "--list", "1,8,64", "b", "--n", "9"}, true);
  EXPECT_EQ(cl.count("n", 0), 9);  // the last value given
  EXPECT_TRUE(cl.flag("on"));
  EXPECT_DOUBLE_EQ(cl.number("x", 0), 1.5);
  EXPECT_EQ(cl.positive_list("list", {}), (std::vector<int64_t>{1, 8, 64}));
  EXPECT_EQ(cl.positional(), (std::vector<std::string>{"a", "b"}));
}

TEST(ToolOptions, FallbacksWhenAbsent) {
  const CommandLine cl = parsed({});
  EXPECT_FALSE(cl.has("n"));
  EXPECT_FALSE(cl.flag("on"));
  EXPECT_EQ(cl.get("x", "dflt"), "dflt");
  EXPECT_EQ(cl.count("n", 3), 3);
  EXPECT_EQ(cl.positive_list("list", {2}), (std::vector<int64_t>{2}));
}

TEST(ToolOptions, UsageErrorsExitTwoNamingTheProblem) {
  EXPECT_EXIT(parsed({"--bogus", "1"}), testing::ExitedWithCode(2), "prog: unknown option --bogus\nusage: prog");
  EXPECT_EXIT(parsed({"word"}), testing::ExitedWithCode(2), "unknown option word");
  EXPECT_EXIT(parsed({"--n"}), testing::ExitedWithCode(2), "missing value after --n");
  EXPECT_EXIT(parsed({"--n", "-1"}).count("n", 0), testing::ExitedWithCode(2),
              "--n needs a non-negative integer, got '-1'");
  EXPECT_EXIT(parsed({"--n", "0"}).positive("n", 1), testing::ExitedWithCode(2), "--n needs a positive integer");
  EXPECT_EXIT(parsed({"--n", "5x"}).count("n", 0), testing::ExitedWithCode(2), "got '5x'");
  EXPECT_EXIT(parsed({"--list", "1,0"}).positive_list("list", {}), testing::ExitedWithCode(2), "got '0'");
  EXPECT_EXIT(parsed({"--x", "fast"}).number("x", 0), testing::ExitedWithCode(2), "--x needs a number");
  EXPECT_EXIT(parsed({}).require({"x"}), testing::ExitedWithCode(2), "--x is required");
}

TEST(ToolOptions, HelpPrintsTheUsage) {
  EXPECT_EXIT(
      {
        parsed({"--help"});
        std::fflush(stdout);
      },
      testing::ExitedWithCode(0), "");
}

TEST(ToolOptions, RunMainReportsExceptions) {
  testing::internal::CaptureStderr();
  EXPECT_EQ(personaplex::tools::run_main("prog", [] () -> int { throw std::runtime_error("no such file"); }), 1);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "prog: no such file\n");
  EXPECT_EQ(personaplex::tools::run_main("prog", [] { return 3; }), 3);
}

}  // namespace
