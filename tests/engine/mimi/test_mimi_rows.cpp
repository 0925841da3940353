// Rows mode: the rows of one batched state are streams of their own that
// start, pause and restart independently; each gives what a stream of its
// own gives for the same frames.
#include <gtest/gtest.h>

#include <ATen/Context.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "mimi/state.h"
#include "tiny_mimi.h"

using namespace personaplex;
using namespace personaplex::mimi;

namespace {

// Which rows step at each frame, and which restart just before it.
struct Frame {
  std::vector<int64_t> restart;
  std::vector<bool> active;
};

void check_rows_like_streams(const Mimi &m, const std::vector<Frame> &schedule) {
  const int64_t B = int64_t(schedule[0].active.size()), F = m.frame_size(), K = m.num_codebooks();
  auto rows = m.new_rows_state(B);
  std::vector<std::unique_ptr<MimiState>> alone;
  for (int64_t r = 0; r < B; ++r) alone.push_back(m.new_state(1));
  for (size_t t = 0; t < schedule.size(); ++t) {
    SCOPED_TRACE("frame " + std::to_string(t));
    const Frame &f = schedule[t];
    if (!f.restart.empty()) m.reset_rows(*rows, f.restart);
    for (int64_t r : f.restart) alone[size_t(r)]->reset();
    at::Tensor active = at::zeros({B}, at::kBool);
    for (int64_t r = 0; r < B; ++r) active[r] = bool(f.active[size_t(r)]);
    at::Tensor pcm = 0.5 * at::randn({B, 1, F});
    at::Tensor codes_in = at::randint(m.codebook_size(), {B, K, 1}, at::kLong);
    rows->active.copy_(active);
    at::Tensor codes = m.encode_frame(pcm, *rows);
    at::Tensor out = m.decode_frame(codes_in, *rows);
    for (int64_t r = 0; r < B; ++r) {
      if (!f.active[size_t(r)]) continue;
      SCOPED_TRACE("row " + std::to_string(r));
      MimiState &s = *alone[size_t(r)];
      EXPECT_TRUE(at::equal(codes[r], m.encode_frame(pcm.narrow(0, r, 1), s)[0]));
      EXPECT_TRUE(at::allclose(out[r], m.decode_frame(codes_in.narrow(0, r, 1), s)[0], 1e-5, 1e-6));
    }
  }
}

// Three rows over 14 frames (past an 8-step context): late starts, pauses,
// a restart mid-stream.
std::vector<Frame> schedule() {
  std::vector<Frame> s;
  for (int t = 0; t < 14; ++t) {
    Frame f;
    f.active = {t != 4 && t != 5, t >= 2 && t % 3 != 0, t >= 1};
    if (t == 2) f.restart = {1};
    if (t == 7) f.restart = {0, 2};
    s.push_back(f);
  }
  return s;
}

}  // namespace

TEST(MimiRows, EachRowIsAStreamOfItsOwn) {
  auto m = test::load_tiny_mimi(test::write_tiny_mimi(test::tiny_mimi_config(/*context=*/8)));
  check_rows_like_streams(*m, schedule());
}

// On CUDA each row's transformer steps from its own position through the
// ring attention kernel, and its quantizer rows through the kernels'.
TEST(MimiRows, EachRowIsAStreamOfItsOwnOnCuda) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const std::string dir = test::write_tiny_mimi(test::tiny_mimi_config(/*context=*/8));
  auto m = Mimi::load(dir + "/weights.safetensors", dir + "/config.json", at::Device(at::kCUDA, 0), at::kFloat);
  check_rows_like_streams(*m, schedule());
}

TEST(MimiRows, ReplicatePaddingAndNoResampling) {
  for (bool resample : {true, false}) {
    SCOPED_TRACE(resample ? "resampling" : "no resampling");
    auto config = test::tiny_mimi_config(/*context=*/8);
    config.seanet.pad_mode = PadMode::Replicate;
    if (!resample) config.frame_rate = 25;
    auto m = test::load_tiny_mimi(test::write_tiny_mimi(config));
    check_rows_like_streams(*m, schedule());
  }
}

TEST(MimiRows, ResetRowsNeedsRowsModeAndValidRows) {
  auto m = test::load_tiny_mimi(test::write_tiny_mimi(test::tiny_mimi_config()));
  auto plain = m->new_state(2);
  EXPECT_THROW(m->reset_rows(*plain, {0}), Error);
  auto rows = m->new_rows_state(2);
  EXPECT_THROW(m->reset_rows(*rows, {2}), Error);
  EXPECT_NO_THROW(m->reset_rows(*rows, {1}));
}
