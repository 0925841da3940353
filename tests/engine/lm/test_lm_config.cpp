#include <gtest/gtest.h>

#include "core/error.h"
#include "lm/config.h"
#include "lm_fixture.h"

using personaplex::Error;
using personaplex::lm::LmConfig;

TEST(LmConfig, DefaultsAreTheReleasedModel) {
  LmConfig c = LmConfig::released();
  EXPECT_EQ(c.dim, 4096);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.num_heads, 32);
  EXPECT_EQ(c.text_card, 32000);
  EXPECT_EQ(c.dep_q, 16);
  EXPECT_EQ(c.depformer_dim, 1024);
  EXPECT_EQ(c.depformer_num_heads, 16);
  EXPECT_EQ(c.depformer_num_layers, 6);
  EXPECT_EQ(c.depformer_hidden(), 2816);
  EXPECT_EQ(c.temporal().gated_hidden(), 11264);
  EXPECT_EQ(c.context, 3000);
  EXPECT_EQ(c.ring_size(), 4);
  EXPECT_EQ(c.num_streams(), 17);
  EXPECT_EQ(c.text_out(), 32000);
  EXPECT_NO_THROW(c.validate("released"));
}

TEST(LmConfig, ReadsTheFixtureConfig) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  LmConfig c = LmConfig::from_json_file(personaplex::test::lm_dir() + "/config.json");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.text_card, 90);
  EXPECT_EQ(c.depformer_dim, 32);
  EXPECT_EQ(c.depformer_hidden(), 88);
  EXPECT_EQ(c.temporal().gated_hidden(), 176);
}

TEST(LmConfig, AbsentKeysKeepTheReleasedValues) {
  LmConfig c = LmConfig::from_json_string(R"({"dim": 128, "num_heads": 2})", "test");
  EXPECT_EQ(c.dim, 128);
  EXPECT_EQ(c.num_layers, 32);
  EXPECT_EQ(c.depformer_dim_feedforward, int64_t(4.125 * 1024));
}

TEST(LmConfig, RejectsBadConfigs) {
  auto bad = [](const std::string &json, const std::string &needle) {
    try {
      LmConfig::from_json_string(json, "cfg.json");
      ADD_FAILURE() << "accepted " << json;
    } catch (const Error &e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    }
  };
  bad("{not json", "not valid JSON");
  bad(R"({"dim": "big"})", "dim");
  bad(R"({"delays": [0, 1]})", "delays");
  bad(R"({"dim": 100, "num_heads": 3})", "heads");
  bad(R"({"positional_embedding": "sin"})", "positional_embedding");
  bad(R"({"gating": "none"})", "gating");
  bad(R"({"n_q": 12})", "n_q");
  bad(R"({"context": 0})", "context");
  bad(R"({"dim": 1e308})", "'dim' must be an integer");
  bad(R"({"context": 18446744073709551615})", "'context' must be an integer");
  bad(R"({"delays": [1e300]})", "'delays' must be an integer");
  bad("{\"dim\": " + std::string(100000, '[') + std::string(100000, ']') + "}", "nested deeper");
  EXPECT_THROW(LmConfig::from_json_file("/nonexistent/config.json"), Error);
}
