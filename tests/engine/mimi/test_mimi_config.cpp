#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "mimi/config.h"
#include "tiny_mimi.h"

using namespace personaplex;
using mimi::MimiConfig;

namespace {

std::string error_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

// The released config as JSON, with one edit applied.
std::string edited(const std::function<void(nlohmann::json &)> &edit) {
  nlohmann::json j = nlohmann::json::parse(MimiConfig().to_json());
  edit(j);
  return j.dump();
}

std::string parse_error(const std::function<void(nlohmann::json &)> &edit) {
  return error_of([&] { MimiConfig::from_json_string(edited(edit), "cfg.json"); });
}

}  // namespace

TEST(MimiConfig, ReleasedDefaults) {
  MimiConfig c;
  EXPECT_EQ(c.seanet.hop_length(), 960);
  EXPECT_EQ(c.frame_size(), 1920);
  EXPECT_EQ(c.resample_stride(), 2);
  EXPECT_EQ(c.num_codebooks, 8);
  EXPECT_EQ(c.quantizer.bins, 2048);
  EXPECT_NO_THROW(c.validate("released"));
}

TEST(MimiConfig, JsonRoundTrip) {
  MimiConfig c = test::tiny_mimi_config(7);
  c.seanet.pad_mode = mimi::PadMode::Replicate;
  c.seanet.true_skip = false;
  MimiConfig d = MimiConfig::from_json_string(c.to_json(), "x");
  EXPECT_EQ(d.to_json(), c.to_json());
  EXPECT_EQ(d.transformer.core.context, 7);
  EXPECT_EQ(d.frame_size(), 32);
  EXPECT_EQ(d.seanet.pad_mode, mimi::PadMode::Replicate);
  EXPECT_FALSE(d.seanet.true_skip);
}

TEST(MimiConfig, ReadsTheFixtureConfig) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  std::string path = test::fixtures_dir() + "/mimi/config.json";
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  MimiConfig c = MimiConfig::from_json_file(path);
  EXPECT_EQ(c.seanet.n_filters, j["seanet"]["n_filters"].get<int64_t>());
  EXPECT_EQ(c.transformer.core.d_model, j["transformer"]["d_model"].get<int64_t>());
  EXPECT_EQ(c.quantizer.dimension, j["quantizer"]["dimension"].get<int64_t>());
  EXPECT_EQ(c.num_codebooks, j["num_codebooks"].get<int64_t>());
}

TEST(MimiConfig, ErrorsNameFileAndKey) {
  std::string e = parse_error([](auto &j) { j["seanet"]["n_filters"] = "many"; });
  EXPECT_NE(e.find("cfg.json"), std::string::npos) << e;
  EXPECT_NE(e.find("seanet.n_filters"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["transformer"]["num_heads"] = 0; });
  EXPECT_NE(e.find("transformer.num_heads"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["seanet"]["activation"] = "GELU"; });
  EXPECT_NE(e.find("seanet.activation"), std::string::npos) << e;
  EXPECT_NE(e.find("GELU"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["quantizer"]["codebook_dim"] = 3; });
  EXPECT_NE(e.find("quantizer.codebook_dim"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["seanet"]["ratios"] = {8, -1}; });
  EXPECT_NE(e.find("seanet.ratios"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["seanet"]["causal"] = false; });
  EXPECT_NE(e.find("seanet.causal"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["transformer"]["d_model"] = 500; });
  EXPECT_NE(e.find("transformer"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["num_codebooks"] = 33; });
  EXPECT_NE(e.find("num_codebooks"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["frame_rate"] = 7.0; });
  EXPECT_NE(e.find("frame_rate"), std::string::npos) << e;

  e = parse_error([](auto &j) { j["resample_method"] = "interpolate"; });
  EXPECT_NE(e.find("resample_method"), std::string::npos) << e;
}

TEST(MimiConfig, BadFiles) {
  std::string e = error_of([] { MimiConfig::from_json_string("{ not json", "broken.json"); });
  EXPECT_NE(e.find("broken.json"), std::string::npos) << e;
  e = error_of([] { MimiConfig::from_json_file(test::temp_dir() + "/absent.json"); });
  EXPECT_NE(e.find("absent.json"), std::string::npos) << e;
  e = error_of([] { MimiConfig::from_json_string("[1, 2]", "list.json"); });
  EXPECT_NE(e.find("list.json"), std::string::npos) << e;
}
