#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace personaplex;

namespace {

std::string write_sample(const std::string &dir) {
  std::string path = dir + "/sample.safetensors";
  std::map<std::string, at::Tensor> tensors{
      {"a.weight", at::arange(12, at::kFloat).reshape({3, 4})},
      {"b.codes", at::arange(5, at::kLong)},
      {"c.half", at::full({2, 2}, 1.5, at::kBFloat16)},
  };
  write_safetensors(path, tensors, {{"format", "pt"}});
  return path;
}

void write_raw(const std::string &path, const std::string &header, size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

std::string error_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SafeTensors, RoundTrip) {
  std::string path = write_sample(test::temp_dir());
  SafeTensors st(path);
  EXPECT_EQ(st.names().size(), 3u);
  EXPECT_EQ(st.metadata().at("format"), "pt");
  at::Tensor a = st.load("a.weight", at::kFloat, at::kCPU, std::vector<int64_t>{3, 4});
  EXPECT_TRUE(at::equal(a, at::arange(12, at::kFloat).reshape({3, 4})));
  EXPECT_TRUE(at::equal(st.load("b.codes", at::kLong, at::kCPU), at::arange(5, at::kLong)));
  at::Tensor c = st.load("c.half", at::kFloat, at::kCPU);
  EXPECT_EQ(c.scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(c[1][1].item<float>(), 1.5f);
  EXPECT_EQ(st.info("c.half").dtype, at::kBFloat16);
}

TEST(SafeTensors, MissingFileNamesIt) {
  auto msg = error_of([] { SafeTensors st("/nonexistent/model.safetensors"); });
  EXPECT_NE(msg.find("/nonexistent/model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
}

TEST(SafeTensors, TruncatedFile) {
  std::string path = write_sample(test::temp_dir());
  auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size - 10);
  auto msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  std::filesystem::resize_file(path, 5);
  EXPECT_NE(error_of([&] { SafeTensors st(path); }).find("too short"), std::string::npos);
}

TEST(SafeTensors, HeaderLengthBeyondFile) {
  std::string path = test::temp_dir() + "/x.safetensors";
  std::ofstream(path, std::ios::binary) << std::string("\xff\xff\xff\x00\x00\x00\x00\x00{}", 10);
  EXPECT_NE(error_of([&] { SafeTensors st(path); }).find("header length"), std::string::npos);
}

TEST(SafeTensors, BadJson) {
  std::string path = test::temp_dir() + "/x.safetensors";
  write_raw(path, "{\"a\": [", 0);
  EXPECT_NE(error_of([&] { SafeTensors st(path); }).find("not valid JSON"), std::string::npos);
}

TEST(SafeTensors, UnsupportedDtypeNamesTensor) {
  std::string path = test::temp_dir() + "/x.safetensors";
  write_raw(path, R"({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}})", 8);
  auto msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("C64"), std::string::npos) << msg;
}

TEST(SafeTensors, SizeMismatchWithShape) {
  std::string path = test::temp_dir() + "/x.safetensors";
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  auto msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 12"), std::string::npos) << msg;
}

// Products that wrap around 64 bits to the byte range given (here 0) were
// once accepted; libtorch then refused a "negative dimension".
TEST(SafeTensors, ShapesWhoseSizeOverflowsAreRefused) {
  const std::string path = test::temp_dir() + "/x.safetensors";
  write_raw(path, R"({"w": {"dtype": "U8", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 8);
  auto msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("'w'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("more elements than any file holds"), std::string::npos) << msg;
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 0]}})", 8);
  msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("more bytes than any file holds"), std::string::npos) << msg;
  write_raw(path, R"({"w": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 0]}})", 8);
  msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("more elements than any file holds"), std::string::npos) << msg;
  write_raw(path, "{\"w\": " + std::string(100000, '[') + std::string(100000, ']') + "}", 8);
  msg = error_of([&] { SafeTensors st(path); });
  EXPECT_NE(msg.find("nested deeper"), std::string::npos) << msg;
}

TEST(SafeTensors, MissingTensorAndWrongShape) {
  std::string path = write_sample(test::temp_dir());
  SafeTensors st(path);
  auto msg = error_of([&] { st.load("nope", at::kFloat, at::kCPU); });
  EXPECT_NE(msg.find("missing tensor 'nope'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  msg = error_of([&] { st.load("a.weight", at::kFloat, at::kCPU, std::vector<int64_t>{4, 3}); });
  EXPECT_NE(msg.find("[3, 4]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected [4, 3]"), std::string::npos) << msg;
}

TEST(SafeTensors, ReadsReferenceFixtureWeights) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  SafeTensors st(test::fixtures_dir() + "/mimi/weights.safetensors");
  EXPECT_TRUE(st.contains("downsample.conv.conv.conv.weight"));
  EXPECT_EQ(st.info("quantizer.rvq_rest.vq.layers.0._codebook.embedding_sum").shape[0], 2048);
}
