#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <fstream>
#include <functional>
#include <iterator>
#include <map>

#include "core/error.h"
#include "io/torch_save.h"
#include "test_util.h"

using namespace personaplex;

namespace {

std::string file_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A torch.save-style zip of the given records (libtorch's own writer).
std::string zip_of(const std::map<std::string, std::string> &records) {
  std::string zip;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void *p, size_t n) {
    zip.append(static_cast<const char *>(p), n);
    return n;
  });
  for (const auto &r : records) writer.writeRecord(r.first, r.second.data(), r.second.size());
  writer.writeEndOfFile();
  return zip;
}

// Pickle pieces, written as torch.save writes them (protocol 2).
std::string str(const std::string &s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out += char(s.size() >> (8 * i));
  return out + s;
}
std::string integer(int64_t v) {  // LONG1, eight bytes
  std::string out = "\x8a\x08";
  for (int i = 0; i < 8; ++i) out += char(uint64_t(v) >> (8 * i));
  return out;
}
std::string int_tuple(const std::vector<int64_t> &v) {
  std::string out = "(";
  for (int64_t x : v) out += integer(x);
  return out + "t";
}

struct Spec {
  std::string key, storage = "FloatStorage", record = "0";
  int64_t numel = 4, offset = 0;
  std::vector<int64_t> sizes = {4}, strides = {1};
};

std::string tensor_pickle(const Spec &s) {
  return "ctorch._utils\n_rebuild_tensor_v2\n((" + str("storage") + "ctorch\n" + s.storage + "\n" + str(s.record) +
         str("cpu") + integer(s.numel) + "tQ" + integer(s.offset) + int_tuple(s.sizes) + int_tuple(s.strides) +
         "\x89" "ccollections\nOrderedDict\n)RtR";
}

std::string dict_pickle(const std::vector<Spec> &specs) {
  std::string p = "\x80\x02}(";
  for (const Spec &s : specs) p += str(s.key) + tensor_pickle(s);
  return p + "u.";
}

std::string archive(const std::string &pickle, size_t record_bytes = 16) {
  return zip_of({{"data.pkl", pickle}, {"byteorder", "little"}, {"data/0", std::string(record_bytes, '\0')}});
}

std::string error_of(const std::string &bytes) {
  try {
    read_torch_save("crafted.pt", bytes);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TorchSave, ReadsTheFixtureVoiceAsLibtorchDoes) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string bytes = file_bytes(test::fixtures_dir() + "/lm/voice.pt");
  auto ours = read_torch_save("voice.pt", bytes);
  auto theirs = torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end())).toGenericDict();
  ASSERT_EQ(ours.size(), 2u);
  EXPECT_EQ(ours[0].first, "embeddings");
  EXPECT_EQ(ours[1].first, "cache");
  for (const auto &[key, t] : ours) {
    const at::Tensor want = theirs.at(key).toTensor();
    EXPECT_EQ(t.scalar_type(), want.scalar_type()) << key;
    EXPECT_TRUE(t.equal(want)) << key;
  }
}

TEST(TorchSave, ReadsLibtorchsTaggedPickles) {
  c10::Dict<std::string, at::Tensor> d;
  d.insert("a", at::arange(6, at::kFloat).reshape({2, 3}).t());  // a strided view
  d.insert("b", at::arange(4, at::kLong));
  const std::vector<char> bytes = torch::jit::pickle_save(d);
  auto t = read_torch_save("tagged.pt", std::string(bytes.begin(), bytes.end()));
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(t[0].second.equal(d.at("a")));
  EXPECT_TRUE(t[1].second.equal(d.at("b")));
}

TEST(TorchSave, ReadsAHandWrittenPickle) {
  auto t = read_torch_save("hand.pt", archive(dict_pickle({Spec{"x"}})));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].second.sizes(), (std::vector<int64_t>{4}));
}

TEST(TorchSave, EveryTruncationIsAnError) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string bytes = file_bytes(test::fixtures_dir() + "/lm/voice.pt");
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(read_torch_save("cut.pt", bytes.substr(0, n)), Error) << n;
}

TEST(TorchSave, FlippedBytesAreReadOrRefusedNeverMore) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  const std::string bytes = file_bytes(test::fixtures_dir() + "/lm/voice.pt");
  size_t refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] = char(damaged[i] ^ 0x5a);
    try {
      read_torch_save("flipped.pt", damaged);
    } catch (const Error &) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0u);  // the headers and the pickle are checked
}

TEST(TorchSave, RefusesWhatTheFormatDoesNotHold) {
  auto has = [](const std::string &e, const std::string &needle) { return e.find(needle) != std::string::npos; };
  std::string e = error_of(archive("\x80\x02" "cos\nsystem\n" + str("true") + "\x85R."));
  EXPECT_TRUE(has(e, "global 'os.system'")) << e;
  EXPECT_TRUE(has(e, "crafted.pt")) << e;

  e = error_of(archive("\x80\x02]."));  // a list
  EXPECT_TRUE(has(e, "opcode 0x5d")) << e;

  Spec huge{"x"};
  huge.numel = int64_t(1) << 60;
  huge.sizes = {int64_t(1) << 60};
  e = error_of(archive(dict_pickle({huge})));
  EXPECT_TRUE(has(e, "tensor 'x'") && has(e, "holds 16 bytes")) << e;

  Spec wide{"x"};
  wide.sizes = {int64_t(1) << 40, int64_t(1) << 40};
  wide.strides = {0, 0};
  e = error_of(archive(dict_pickle({wide})));
  EXPECT_TRUE(has(e, "overflows")) << e;

  Spec broadcast{"x"};
  broadcast.sizes = {int64_t(1) << 30};
  broadcast.strides = {0};
  e = error_of(archive(dict_pickle({broadcast})));
  EXPECT_TRUE(has(e, "past its storage")) << e;

  Spec past{"x"};
  past.offset = 3;
  e = error_of(archive(dict_pickle({past})));
  EXPECT_TRUE(has(e, "past its storage")) << e;

  Spec missing{"x"};
  missing.record = "7";
  e = error_of(archive(dict_pickle({missing})));
  EXPECT_TRUE(has(e, "no storage record")) << e;

  Spec named{"x"};
  named.record = "../../etc/passwd";
  e = error_of(archive(dict_pickle({named})));
  EXPECT_TRUE(has(e, "not a record number")) << e;

  Spec twice{"x"};
  e = error_of(archive(dict_pickle({twice, twice})));
  EXPECT_TRUE(has(e, "appears twice")) << e;

  // Tuples of memoized tuples: growth stops at the node limit.
  std::string blowup("\x80\x02)q\x00", 5);
  for (int i = 0; i < 8; ++i) blowup += std::string("(h\x00h\x00h\x00h\x00tq\x00", 12);
  e = error_of(archive(blowup + "."));
  EXPECT_TRUE(has(e, "nesting more than")) << e;

  e = error_of(archive(std::string("\x80\x02") + std::string(100000, '(') + "."));
  EXPECT_TRUE(has(e, "stack deeper")) << e;

  e = error_of(zip_of({{"data.pkl", dict_pickle({Spec{"x"}})}, {"byteorder", "big"}, {"data/0", std::string(16, 0)}}));
  EXPECT_TRUE(has(e, "little-endian")) << e;

  e = error_of("PK\x05\x06" + std::string(18, '\0'));
  EXPECT_TRUE(has(e, "no data.pkl")) << e;
}
