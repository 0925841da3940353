#include <gtest/gtest.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>
#include <iterator>

#include "core/error.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

std::string write_pickle(const std::string &path, const at::IValue &value) {
  std::vector<char> bytes = torch::jit::pickle_save(value);
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

std::string load_error(const std::string &path) {
  try {
    load_voice_file(path, test::tiny_lm()->config());
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

c10::Dict<std::string, at::Tensor> voice_dict(at::Tensor embeddings, at::Tensor cache) {
  c10::Dict<std::string, at::Tensor> d;
  d.insert("embeddings", embeddings);
  d.insert("cache", cache);
  return d;
}

}  // namespace

TEST(VoiceFile, ReadsTheReleasedFormat) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  auto v = load_voice_file(test::lm_dir() + "/voice.pt", test::tiny_lm()->config());
  EXPECT_EQ(v.embeddings.sizes(), (std::vector<int64_t>{9, 1, 1, 64}));
  EXPECT_EQ(v.cache.sizes(), (std::vector<int64_t>{1, 17, 4}));
  EXPECT_EQ(v.cache.scalar_type(), at::kLong);
}

TEST(VoiceFile, BadFilesAreErrorsNamingTheProblem) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string dir = test::temp_dir();
  auto has = [](const std::string &e, const std::string &needle) {
    return e.find(needle) != std::string::npos;
  };
  EXPECT_TRUE(has(load_error(dir + "/missing.pt"), "cannot open"));
  std::ofstream(dir + "/junk.pt") << "not a zip file";
  EXPECT_TRUE(has(load_error(dir + "/junk.pt"), "junk.pt"));

  c10::Dict<std::string, at::Tensor> wrong_key;
  wrong_key.insert("embedding", at::zeros({3, 1, 1, 64}));
  wrong_key.insert("cache", at::zeros({1, 17, 4}, at::kLong));
  std::string e = load_error(write_pickle(dir + "/key.pt", wrong_key));
  EXPECT_TRUE(has(e, "no 'embeddings'")) << e;
  EXPECT_TRUE(has(e, "key.pt")) << e;

  e = load_error(write_pickle(dir + "/dim.pt", voice_dict(at::zeros({3, 1, 1, 32}), at::zeros({1, 17, 4}, at::kLong))));
  EXPECT_TRUE(has(e, "'embeddings' has shape [3, 1, 1, 32]")) << e;
  e = load_error(write_pickle(dir + "/ring.pt", voice_dict(at::zeros({3, 1, 1, 64}), at::zeros({1, 17, 3}, at::kLong))));
  EXPECT_TRUE(has(e, "'cache' has shape")) << e;
  e = load_error(write_pickle(dir + "/ids.pt", voice_dict(at::zeros({3, 1, 1, 64}), at::full({1, 17, 4}, 5000, at::kLong))));
  EXPECT_TRUE(has(e, "outside")) << e;
  e = load_error(write_pickle(dir + "/list.pt", at::IValue(std::vector<int64_t>{1, 2})));
  EXPECT_TRUE(has(e, "dict")) << e;
}

// The released format holds two tensors; a voice of another model is
// refused by its shapes, anything else by name, and no byte of a damaged
// file reaches a general unpickler (libtorch's crashed on crafted files).
TEST(VoiceFile, RefusesOtherContentsByName) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string dir = test::temp_dir();
  c10::Dict<std::string, at::Tensor> extra = voice_dict(at::zeros({3, 1, 1, 64}), at::zeros({1, 17, 4}, at::kLong));
  extra.insert("payload", at::zeros({1}));
  std::string e = load_error(write_pickle(dir + "/extra.pt", extra));
  EXPECT_NE(e.find("'payload' is not part of a voice file"), std::string::npos) << e;
  e = load_error(write_pickle(dir + "/big.pt", voice_dict(at::zeros({3, 1, 1, 4096}), at::zeros({1, 17, 4}, at::kLong))));
  EXPECT_NE(e.find("another model"), std::string::npos) << e;

  std::ifstream in(test::lm_dir() + "/voice.pt", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const LmConfig &config = test::tiny_lm()->config();
  EXPECT_EQ(read_voice("voice.pt", good, config).embeddings.size(0), 9);
  for (size_t i = 0; i < good.size(); i += 3) {
    std::string bad = good;
    bad[i] = char(~bad[i]);
    try {
      read_voice("bad.pt", bad, config);
    } catch (const Error &) {
    }
  }
}

TEST(VoiceFile, SavedFromAudioReplaysIdentically) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  // A voice given as codes, saved after its phase, then replayed: the
  // conversation is the same (the fixture's voice codes come from Mimi; any
  // codes will do here).
  test::LmIo io = test::lm_io();
  auto model = test::tiny_lm();
  Prompt from_codes;
  from_codes.voice.codes = at::randint(0, 2048, {8, 7}, at::kLong);
  from_codes.text_tokens = io.prompt_tokens;
  Conversation a(model, test::greedy());
  VoiceEmbeddings saved = run_prompts(a, from_codes, {}, /*save_voice=*/true);
  ASSERT_TRUE(saved.embeddings.defined());
  EXPECT_EQ(saved.embeddings.sizes(), (std::vector<int64_t>{6, 1, 1, 64}));
  const std::string path = test::temp_dir() + "/voice.pt";
  save_voice_file(path, saved);

  Prompt from_file;
  from_file.voice.stored = load_voice_file(path, model->config());
  from_file.text_tokens = io.prompt_tokens;
  EXPECT_TRUE(at::equal(from_file.voice.stored.embeddings, saved.embeddings));
  EXPECT_TRUE(at::equal(from_file.voice.stored.cache, saved.cache));
  Conversation b(model, test::greedy());
  run_prompts(b, from_file);
  EXPECT_EQ(a.steps(), b.steps());
  for (int64_t s = 0; s < 24; ++s)
    EXPECT_EQ(a.step_user(test::user_frame(io, s))->tokens, b.step_user(test::user_frame(io, s))->tokens);
}
