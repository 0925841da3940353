// The codec end to end on a tiny random model: streaming state semantics,
// batching, input validation and weight loading errors.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "mimi/mimi.h"
#include "mimi/random_weights.h"
#include "mimi/state.h"
#include "test_util.h"
#include "tiny_mimi.h"

using namespace personaplex;
using mimi::Mimi;
using mimi::MimiState;

namespace {

std::string error_of(const std::function<void()> &fn) {
  try {
    fn();
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

at::Tensor encode_stream(const Mimi &m, const at::Tensor &pcm, MimiState &state) {
  std::vector<at::Tensor> codes;
  for (int64_t t = 0; t < pcm.size(2); t += m.frame_size())
    codes.push_back(m.encode_frame(pcm.narrow(2, t, m.frame_size()), state));
  return at::cat(codes, 2);
}

at::Tensor decode_stream(const Mimi &m, const at::Tensor &codes, MimiState &state) {
  std::vector<at::Tensor> pcm;
  for (int64_t t = 0; t < codes.size(2); ++t) pcm.push_back(m.decode_frame(codes.narrow(2, t, 1), state));
  return at::cat(pcm, 2);
}

class TinyMimi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::write_tiny_mimi(test::tiny_mimi_config()));
    model_ = new std::shared_ptr<const Mimi>(test::load_tiny_mimi(*dir_));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete dir_;
  }
  const Mimi &m() const { return **model_; }
  at::Tensor pcm(int64_t batch, int64_t frames) const {
    return 0.5 * at::randn({batch, 1, frames * m().frame_size()});
  }

  static std::string *dir_;
  static std::shared_ptr<const Mimi> *model_;
};

std::string *TinyMimi::dir_ = nullptr;
std::shared_ptr<const Mimi> *TinyMimi::model_ = nullptr;

}  // namespace

TEST_F(TinyMimi, SizesComeFromTheConfig) {
  EXPECT_EQ(m().frame_size(), 32);
  EXPECT_EQ(m().sample_rate(), 400);
  EXPECT_EQ(m().num_codebooks(), 3);
  EXPECT_EQ(m().codebook_size(), 64);
  at::Tensor codes = m().encode(pcm(1, 5));
  EXPECT_EQ(codes.sizes(), (at::IntArrayRef{1, 3, 5}));
  EXPECT_EQ(codes.scalar_type(), at::kLong);
  // Random weights should still spread over the codebook, or the tests below prove little.
  EXPECT_GT(std::get<0>(at::_unique(codes)).numel(), 3);
  EXPECT_EQ(m().decode(codes).sizes(), (at::IntArrayRef{1, 1, 160}));
}

TEST_F(TinyMimi, StreamingMatchesWholeSignal) {
  at::Tensor x = pcm(1, 6);
  auto state = m().new_state();
  at::Tensor codes = encode_stream(m(), x, *state);
  EXPECT_TRUE(at::equal(codes, m().encode(x)));
  EXPECT_TRUE(at::allclose(decode_stream(m(), codes, *state), m().decode(codes), 1e-5, 1e-5));
}

TEST_F(TinyMimi, ResetGivesIdenticalOutputs) {
  at::Tensor x = pcm(1, 5);
  auto state = m().new_state();
  at::Tensor codes1 = encode_stream(m(), x, *state);
  at::Tensor pcm1 = decode_stream(m(), codes1, *state);
  // Without a reset the stream carries on, so the same input gives other audio.
  EXPECT_FALSE(at::allclose(decode_stream(m(), codes1, *state), pcm1));
  state->reset();
  EXPECT_TRUE(at::equal(encode_stream(m(), x, *state), codes1));
  EXPECT_TRUE(at::equal(decode_stream(m(), codes1, *state), pcm1));
}

TEST_F(TinyMimi, IndependentStatesDoNotInterfere) {
  at::Tensor a = pcm(1, 4), b = pcm(1, 4);
  auto sa = m().new_state(), sb = m().new_state();
  at::Tensor ca = encode_stream(m(), a, *sa), cb = encode_stream(m(), b, *sb);
  auto s1 = m().new_state(), s2 = m().new_state();
  std::vector<at::Tensor> ia, ib, pa, pb;
  for (int64_t f = 0; f < 4; ++f) {  // interleaved frame by frame
    ia.push_back(m().encode_frame(a.narrow(2, f * 32, 32), *s1));
    ib.push_back(m().encode_frame(b.narrow(2, f * 32, 32), *s2));
    pa.push_back(m().decode_frame(ca.narrow(2, f, 1), *s1));
    pb.push_back(m().decode_frame(cb.narrow(2, f, 1), *s2));
  }
  EXPECT_TRUE(at::equal(at::cat(ia, 2), ca));
  EXPECT_TRUE(at::equal(at::cat(ib, 2), cb));
  auto sd = m().new_state();
  EXPECT_TRUE(at::allclose(at::cat(pa, 2), decode_stream(m(), ca, *sd), 1e-6, 1e-6));
}

TEST_F(TinyMimi, BatchOfTwoEqualsTwoSingleStreams) {
  at::Tensor x = pcm(2, 5);
  auto batch = m().new_state(2);
  at::Tensor codes = encode_stream(m(), x, *batch);
  at::Tensor out = decode_stream(m(), codes, *batch);
  for (int64_t i = 0; i < 2; ++i) {
    auto one = m().new_state(1);
    at::Tensor ci = encode_stream(m(), x.narrow(0, i, 1), *one);
    EXPECT_TRUE(at::equal(ci, codes.narrow(0, i, 1))) << "stream " << i;
    at::Tensor pi = decode_stream(m(), codes.narrow(0, i, 1), *one);
    EXPECT_TRUE(at::allclose(pi, out.narrow(0, i, 1), 1e-5, 1e-5)) << "stream " << i;
  }
}

TEST_F(TinyMimi, LongStreamsKeepRunningPastTheContext) {
  // Context 64 steps = 32 frames: run past it; outputs stay finite and shaped.
  auto state = m().new_state();
  at::Tensor codes = encode_stream(m(), pcm(1, 40), *state);
  EXPECT_EQ(codes.size(2), 40);
  at::Tensor out = decode_stream(m(), codes, *state);
  EXPECT_TRUE(at::isfinite(out).all().item<bool>());
}

TEST_F(TinyMimi, BadCodesAreErrors) {
  auto state = m().new_state();
  at::Tensor codes = at::zeros({1, 3, 1}, at::kLong);
  codes[0][1][0] = 64;
  std::string e = error_of([&] { m().decode_frame(codes, *state); });
  EXPECT_NE(e.find("64"), std::string::npos) << e;
  codes[0][1][0] = -1;
  e = error_of([&] { m().decode_frame(codes, *state); });
  EXPECT_NE(e.find("-1"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { m().decode(codes); }), "");
  EXPECT_NE(error_of([&] { m().decode_frame(at::zeros({1, 2, 1}, at::kLong), *state); }), "");
  EXPECT_NE(error_of([&] { m().decode_frame(at::zeros({2, 3, 1}, at::kLong), *state); }), "");
  EXPECT_NE(error_of([&] { m().decode_frame(at::zeros({1, 3, 1}, at::kFloat), *state); }), "");
  // The state is still usable afterwards.
  EXPECT_EQ(m().decode_frame(at::zeros({1, 3, 1}, at::kLong), *state).size(2), 32);
}

TEST_F(TinyMimi, BadPcmIsAnError) {
  auto state = m().new_state();
  EXPECT_NE(error_of([&] { m().encode_frame(at::zeros({1, 1, 31}), *state); }), "");
  EXPECT_NE(error_of([&] { m().encode_frame(at::zeros({2, 1, 32}), *state); }), "");
  EXPECT_NE(error_of([&] { m().encode(at::zeros({1, 1, 33})); }), "");
  EXPECT_NE(error_of([&] { m().new_state(0); }), "");
}

TEST_F(TinyMimi, RandomWeightsHaveTheReleasedLayout) {
  SafeTensors f(*dir_ + "/weights.safetensors");
  auto shapes = mimi::mimi_tensor_shapes(test::tiny_mimi_config());
  EXPECT_EQ(f.names().size(), shapes.size());
  for (const auto &s : shapes) {
    ASSERT_TRUE(f.contains(s.first)) << s.first;
    EXPECT_EQ(f.info(s.first).shape, s.second) << s.first;
  }
  // All n_q levels are stored, though only num_codebooks are used.
  EXPECT_TRUE(f.contains("quantizer.rvq_rest.vq.layers.2._codebook.embedding_sum"));
}

// Choices of how libtorch runs the convolutions that change no code and no
// sample beyond rounding, on the CPU and on CUDA: channels-last filters
// (mimi/conv_filters.h), chosen at load, and the deep layers as products
// (mimi/conv_product.h), chosen at each step (by default on CUDA: forced
// either way here).
TEST(MimiConvChoices, CodeTheSame) {
  const std::string dir = test::write_tiny_mimi(test::tiny_mimi_config());
  std::vector<at::Device> devices = {at::Device(at::kCPU)};
  if (at::hasCUDA()) devices.push_back(at::Device(at::kCUDA, 0));
  for (const at::Device &device : devices) {
    for (const auto &[name, value] : {std::pair{"PERSONAPLEX_CONV_FILTERS", "nhwc"},
                                      std::pair{"PERSONAPLEX_DEEP_CONV", "product"},
                                      std::pair{"PERSONAPLEX_DEEP_CONV", "libtorch"}}) {
      SCOPED_TRACE(device.str() + " " + name + "=" + value);
      auto plain = Mimi::load(dir + "/weights.safetensors", dir + "/config.json", device, at::kFloat);
      const test::ScopedEnv chosen(name, value);
      auto other = Mimi::load(dir + "/weights.safetensors", dir + "/config.json", device, at::kFloat);
      const at::Tensor x = (0.5 * at::randn({2, 1, 6 * plain->frame_size()})).to(device);
      auto s1 = plain->new_state(2), s2 = other->new_state(2);
      at::Tensor codes;
      {
        const test::ScopedEnv shipped(name, "");
        codes = encode_stream(*plain, x, *s1);
      }
      EXPECT_TRUE(at::equal(encode_stream(*other, x, *s2), codes));
      at::Tensor want;
      {
        const test::ScopedEnv shipped(name, "");
        want = decode_stream(*plain, codes, *s1);
      }
      EXPECT_TRUE(at::allclose(decode_stream(*other, codes, *s2), want, 1e-4, 1e-5));
    }
  }
}

TEST(MimiLoad, WrongShapeNamesTheTensor) {
  auto config = test::tiny_mimi_config();
  std::string dir = test::write_tiny_mimi(config);
  SafeTensors good(dir + "/weights.safetensors");
  const std::string victim = "decoder_transformer.transformer.layers.1.linear2.weight";
  std::map<std::string, at::Tensor> tensors;
  for (const auto &name : good.names()) tensors[name] = good.view(name).clone();
  tensors[victim] = at::zeros({3, 3});
  write_safetensors(dir + "/bad.safetensors", tensors);
  std::string e = error_of([&] { Mimi::load(dir + "/bad.safetensors", dir + "/config.json", at::kCPU, at::kFloat); });
  EXPECT_NE(e.find(victim), std::string::npos) << e;

  tensors.erase(victim);
  write_safetensors(dir + "/missing.safetensors", tensors);
  e = error_of([&] { Mimi::load(dir + "/missing.safetensors", dir + "/config.json", at::kCPU, at::kFloat); });
  EXPECT_NE(e.find(victim), std::string::npos) << e;
}

TEST(MimiLoad, ConfigNotMatchingWeights) {
  auto config = test::tiny_mimi_config();
  std::string dir = test::write_tiny_mimi(config);
  config.seanet.n_filters = 4;
  std::string other = test::write_tiny_mimi(config);
  std::string e = error_of([&] { Mimi::load(dir + "/weights.safetensors", other + "/config.json", at::kCPU, at::kFloat); });
  EXPECT_NE(e.find("encoder.model.0.conv.conv.weight"), std::string::npos) << e;
  e = error_of([&] { Mimi::load(dir + "/absent.safetensors", "", at::kCPU, at::kFloat); });
  EXPECT_NE(e.find("absent.safetensors"), std::string::npos) << e;
}

// Dtypes: bf16 streams on the CPU too (its transposed convolutions run in
// fp32 there); float16 and integer types are refused at load, named.
TEST(MimiLoad, DtypesAcceptedOrRefusedByName) {
  std::string dir = test::write_tiny_mimi(test::tiny_mimi_config());
  auto m = Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::kCPU, at::kBFloat16);
  EXPECT_EQ(m->dtype(), at::kBFloat16);
  auto state = m->new_state(1);
  at::Tensor codes = m->encode_frame(0.1 * at::randn({1, 1, m->frame_size()}), *state);
  at::Tensor pcm = m->decode_frame(codes, *state);
  EXPECT_EQ(pcm.scalar_type(), at::kFloat);
  EXPECT_EQ(pcm.size(2), m->frame_size());
  EXPECT_TRUE(pcm.isfinite().all().item<bool>());
  std::string e = error_of([&] { Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::kCPU, at::kHalf); });
  EXPECT_NE(e.find("float16 runs on CUDA only"), std::string::npos) << e;
  e = error_of([&] { Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::kCPU, at::kInt); });
  EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
}

TEST(MimiRandomWeights, SameSeedSameFile) {
  auto config = test::tiny_mimi_config();
  std::string a = test::write_tiny_mimi(config, 5), b = test::write_tiny_mimi(config, 5),
              c = test::write_tiny_mimi(config, 6);
  SafeTensors fa(a + "/weights.safetensors"), fb(b + "/weights.safetensors"), fc(c + "/weights.safetensors");
  const std::string name = "encoder.model.0.conv.conv.weight";
  EXPECT_TRUE(at::equal(fa.view(name), fb.view(name)));
  EXPECT_FALSE(at::equal(fa.view(name), fc.view(name)));
}

TEST(MimiCuda, GraphReplayMatchesDirectCalls) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  // Compared with the CPU in full fp32: no TF32 convolutions.
  const bool tf32 = at::globalContext().allowTF32CuDNN();
  at::globalContext().setAllowTF32CuDNN(false);
  std::string dir = test::write_tiny_mimi(test::tiny_mimi_config(/*context=*/8));
  auto gpu = Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::Device(at::kCUDA, 0), at::kFloat);
  auto cpu = test::load_tiny_mimi(dir);
  at::Tensor x = 0.5 * at::randn({2, 1, 12 * 32});  // past the 8-step context
  auto graphed = gpu->new_state(2), direct = gpu->new_state(2), host = cpu->new_state(2);
  direct->encode_graph.reset();
  direct->decode_graph.reset();
  at::Tensor codes = encode_stream(*gpu, x, *graphed);
  EXPECT_TRUE(at::equal(codes.cpu(), encode_stream(*gpu, x, *direct).cpu()));
  EXPECT_TRUE(at::equal(codes.cpu(), encode_stream(*cpu, x, *host)));
  at::Tensor pcm = decode_stream(*gpu, codes, *graphed).cpu();
  EXPECT_TRUE(at::allclose(pcm, decode_stream(*gpu, codes, *direct).cpu(), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(pcm, decode_stream(*cpu, codes.cpu(), *host), 1e-4, 1e-4));
  // A reset drops the graphs and starts the stream over.
  graphed->reset();
  EXPECT_TRUE(at::equal(encode_stream(*gpu, x, *graphed).cpu(), codes.cpu()));
  at::globalContext().setAllowTF32CuDNN(tf32);
}

// Other architectures the config can describe: every one must load from its
// own random weights and stream exactly as it runs on the whole signal.
TEST(MimiVariants, StreamLikeTheWholeSignal) {
  using Edit = std::function<void(mimi::MimiConfig &)>;
  const std::vector<std::pair<std::string, Edit>> variants = {
      {"two residual layers, dilated", [](auto &c) { c.seanet.n_residual_layers = 2; }},
      {"conv shortcut", [](auto &c) { c.seanet.true_skip = false; }},
      {"replicate padding", [](auto &c) { c.seanet.pad_mode = mimi::PadMode::Replicate; }},
      {"projected transformer", [](auto &c) { c.transformer.core.d_model = 24; c.transformer.core.num_heads = 3; }},
      {"no resampling", [](auto &c) { c.frame_rate = 25; }},
      {"one codebook", [](auto &c) { c.num_codebooks = 1; }},
      {"all codebooks", [](auto &c) { c.num_codebooks = c.quantizer.n_q; }},
      {"dense upsample", [](auto &c) { c.upsample_channel_wise = false; }},
      {"rms norm, gated, no rope, no layer scale",
       [](auto &c) {
         c.transformer.core.norm = nn::Norm::RmsNorm;
         c.transformer.core.mlp = nn::Mlp::SiluGated;
         c.transformer.core.rope = false;
         c.transformer.core.layer_scale = false;
       }},
      {"three ratios", [](auto &c) { c.seanet.ratios = {2, 4, 2}; }},
  };
  for (const auto &[name, edit] : variants) {
    SCOPED_TRACE(name);
    mimi::MimiConfig config = test::tiny_mimi_config();
    edit(config);
    config.validate(name);
    auto m = test::load_tiny_mimi(test::write_tiny_mimi(config));
    at::Tensor x = 0.5 * at::randn({1, 1, 5 * m->frame_size()});
    auto state = m->new_state();
    at::Tensor codes = encode_stream(*m, x, *state);
    ASSERT_EQ(codes.sizes(), (at::IntArrayRef{1, config.num_codebooks, 5}));
    EXPECT_TRUE(at::equal(codes, m->encode(x)));
    at::Tensor pcm = decode_stream(*m, codes, *state);
    EXPECT_EQ(pcm.sizes(), x.sizes());
    EXPECT_TRUE(at::allclose(pcm, m->decode(codes), 1e-5, 1e-5));
    // Through JSON and back, the same model.
    EXPECT_EQ(mimi::MimiConfig::from_json_string(config.to_json(), name).to_json(), config.to_json());
  }
}
