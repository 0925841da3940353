#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "duplex/model_files.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::duplex;

namespace {

void touch(const std::string &path) { std::ofstream(path) << "x"; }

// A model directory with the released names.
std::string released_dir(bool configs = false, bool voices = false) {
  std::string dir = test::temp_dir();
  touch(dir + "/" + kLmWeightsName);
  touch(dir + "/" + kMimiWeightsName);
  touch(dir + "/" + kTokenizerName);
  if (configs) {
    touch(dir + "/" + kLmConfigName);
    touch(dir + "/" + kMimiConfigName);
  }
  if (voices) std::filesystem::create_directory(dir + "/" + kVoicesDirName);
  return dir;
}

std::string error_of(const ModelPaths &p) {
  try {
    resolve_model_files(p);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelFiles, ReleasedNamesInADirectory) {
  const std::string dir = released_dir();
  ModelFiles f = resolve_model_files({dir});
  EXPECT_EQ(f.lm_weights, dir + "/" + kLmWeightsName);
  EXPECT_EQ(f.mimi_weights, dir + "/" + kMimiWeightsName);
  EXPECT_EQ(f.tokenizer, dir + "/" + kTokenizerName);
  EXPECT_EQ(f.lm_config, "");
  EXPECT_EQ(f.mimi_config, "");
  EXPECT_EQ(f.voices_dir, "");
}

TEST(ModelFiles, OptionalConfigsAndVoicesWhenPresent) {
  const std::string dir = released_dir(true, true);
  ModelFiles f = resolve_model_files({dir});
  EXPECT_EQ(f.lm_config, dir + "/" + kLmConfigName);
  EXPECT_EQ(f.mimi_config, dir + "/" + kMimiConfigName);
  EXPECT_EQ(f.voices_dir, dir + "/" + kVoicesDirName);
}

TEST(ModelFiles, EachFileOverridable) {
  const std::string dir = released_dir(true, true), other = released_dir(true, true);
  ModelPaths p{dir};
  p.lm_weights = other + "/" + kLmWeightsName;
  p.lm_config = other + "/" + kLmConfigName;
  p.mimi_weights = other + "/" + kMimiWeightsName;
  p.mimi_config = other + "/" + kMimiConfigName;
  p.tokenizer = other + "/" + kTokenizerName;
  p.voices_dir = other + "/" + kVoicesDirName;
  ModelFiles f = resolve_model_files(p);
  EXPECT_EQ(f.lm_weights, p.lm_weights);
  EXPECT_EQ(f.lm_config, p.lm_config);
  EXPECT_EQ(f.mimi_weights, p.mimi_weights);
  EXPECT_EQ(f.mimi_config, p.mimi_config);
  EXPECT_EQ(f.tokenizer, p.tokenizer);
  EXPECT_EQ(f.voices_dir, p.voices_dir);
}

TEST(ModelFiles, OverridesWithoutADirectory) {
  const std::string dir = released_dir();
  ModelPaths p;
  p.lm_weights = dir + "/" + kLmWeightsName;
  p.mimi_weights = dir + "/" + kMimiWeightsName;
  p.tokenizer = dir + "/" + kTokenizerName;
  EXPECT_EQ(resolve_model_files(p).tokenizer, p.tokenizer);
}

TEST(ModelFiles, MissingFilesNamedWithTheirRole) {
  const std::string dir = released_dir();
  std::filesystem::remove(dir + "/" + kMimiWeightsName);
  std::string e = error_of({dir});
  EXPECT_NE(e.find("Mimi weights"), std::string::npos) << e;
  EXPECT_NE(e.find(kMimiWeightsName), std::string::npos) << e;

  ModelPaths p{released_dir()};
  p.tokenizer = "/nonexistent/spm.model";
  e = error_of(p);
  EXPECT_NE(e.find("tokenizer"), std::string::npos) << e;
  EXPECT_NE(e.find("/nonexistent/spm.model"), std::string::npos) << e;

  p = ModelPaths{released_dir()};
  p.lm_config = "/nonexistent/lm.json";
  e = error_of(p);
  EXPECT_NE(e.find("LM config"), std::string::npos) << e;

  p = ModelPaths{released_dir()};
  p.voices_dir = "/nonexistent/voices";
  EXPECT_NE(error_of(p).find("voices directory"), std::string::npos);

  EXPECT_NE(error_of({"/nonexistent/model"}).find("model directory"), std::string::npos);
  EXPECT_NE(error_of({}).find("LM weights"), std::string::npos);
}

TEST(ModelFiles, IdentityFollowsTheFile) {
  const std::string dir = released_dir();
  const std::string path = dir + "/" + kLmWeightsName;
  const std::string before = file_identity(path);
  EXPECT_EQ(file_identity(dir + "/./" + kLmWeightsName), before);
  std::ofstream(path) << "longer contents";
  EXPECT_NE(file_identity(path), before);
  EXPECT_EQ(file_identity(""), "");
}
