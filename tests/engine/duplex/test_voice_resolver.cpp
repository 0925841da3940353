#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "duplex/voice_resolver.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::duplex;

namespace {

void touch(const std::string &path) { std::ofstream(path) << "x"; }

std::string voices() {
  std::string dir = test::temp_dir();
  touch(dir + "/NATF2.pt");
  touch(dir + "/NATF2.wav");
  touch(dir + "/MINE.wav");
  touch(dir + "/notes.txt");
  return dir;
}

std::string error_of(const std::string &voice, const std::string &dir) {
  try {
    resolve_voice(voice, dir);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(VoiceResolver, NamesLookedUpPtFirst) {
  const std::string dir = voices();
  EXPECT_EQ(resolve_voice("NATF2", dir), dir + "/NATF2.pt");
  EXPECT_EQ(resolve_voice("NATF2.pt", dir), dir + "/NATF2.pt");
  EXPECT_EQ(resolve_voice("NATF2.wav", dir), dir + "/NATF2.wav");
  EXPECT_EQ(resolve_voice("MINE", dir), dir + "/MINE.wav");
  EXPECT_EQ(resolve_voice("", dir), "");
}

TEST(VoiceResolver, PathsUsedAsTheyAre) {
  const std::string dir = voices(), elsewhere = test::temp_dir();
  touch(elsewhere + "/other.wav");
  EXPECT_EQ(resolve_voice(elsewhere + "/other.wav", dir), elsewhere + "/other.wav");
  EXPECT_EQ(resolve_voice(elsewhere + "/other.wav", ""), elsewhere + "/other.wav");
}

TEST(VoiceResolver, NamesCannotLeaveTheDirectory) {
  const std::string dir = voices();
  for (const char *bad : {"../x", "a/b", "/etc/passwd", "..", ".", "../NATF2.pt", "/nonexistent/v.pt"}) {
    const std::string e = error_of(bad, dir);
    EXPECT_NE(e.find("voice name"), std::string::npos) << bad << ": " << e;
  }
}

TEST(VoiceResolver, UnknownVoiceListsTheAvailable) {
  const std::string dir = voices();
  const std::string e = error_of("NATM9", dir);
  EXPECT_NE(e.find("unknown voice \"NATM9\""), std::string::npos) << e;
  EXPECT_NE(e.find("MINE.wav, NATF2.pt, NATF2.wav"), std::string::npos) << e;
  EXPECT_EQ(e.find("notes.txt"), std::string::npos) << e;
  EXPECT_NE(error_of("NATF2", "").find("no voices directory"), std::string::npos);
}

TEST(VoiceResolver, Listing) {
  EXPECT_EQ(available_voices(voices()), (std::vector<std::string>{"MINE.wav", "NATF2.pt", "NATF2.wav"}));
  EXPECT_TRUE(available_voices("/nonexistent").empty());
}

TEST(VoiceResolver, DefaultVoiceIsNatf2ElseTheOnlyOne) {
  EXPECT_EQ(default_voice(voices()), "NATF2.pt");
  const std::string one = test::temp_dir();
  EXPECT_EQ(default_voice(one), "");
  touch(one + "/VARM1.pt");
  EXPECT_EQ(default_voice(one), "VARM1.pt");
  touch(one + "/VARM2.pt");
  EXPECT_EQ(default_voice(one), "");  // two others: none is the default
  EXPECT_EQ(default_voice(""), "");
}
