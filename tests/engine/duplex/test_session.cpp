// Sessions on the reference fixtures' tiny model: the offline conversation
// of the fixtures, frame by frame, restarts and shared models.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "duplex/session.h"
#include "io/safetensors.h"
#include "test_util.h"

using namespace personaplex;
using namespace personaplex::duplex;

namespace {

ModelFiles fixture_files() {
  const std::string dir = test::fixtures_dir();
  ModelPaths p;
  p.lm_weights = dir + "/lm/weights.safetensors";
  p.lm_config = dir + "/lm/config.json";
  p.mimi_weights = dir + "/mimi/weights.safetensors";
  p.mimi_config = dir + "/mimi/config.json";
  p.tokenizer = dir + "/lm/tokenizer.model";
  return resolve_model_files(p);
}

std::shared_ptr<const DuplexModel> fixture_model() {
  return DuplexModel::acquire(fixture_files(), at::Device(at::kCPU), {});
}

struct Io {
  std::vector<float> user_pcm, out_pcm;
  std::vector<std::string> text_pieces;
  std::string prompt;
};

std::vector<float> floats(const at::Tensor &t) {
  at::Tensor c = t.contiguous().view({-1});
  return {c.data_ptr<float>(), c.data_ptr<float>() + c.numel()};
}

Io fixture_io() {
  const std::string dir = test::fixtures_dir() + "/lm";
  SafeTensors f(dir + "/io.safetensors");
  Io io;
  io.user_pcm = floats(f.load("user_pcm", at::kFloat, at::kCPU));
  io.out_pcm = floats(f.load("out_pcm", at::kFloat, at::kCPU));
  std::ifstream in(dir + "/io.json");
  auto j = nlohmann::json::parse(in);
  io.text_pieces = j.at("text_pieces").get<std::vector<std::string>>();
  io.prompt = j.at("prompt").get<std::string>();
  return io;
}

SessionOptions fixture_options(const Io &io) {
  SessionOptions o;
  o.prompt = io.prompt;
  o.voice_path = test::fixtures_dir() + "/lm/voice.pt";
  o.sampling.greedy = true;
  return o;
}

struct Output {
  std::vector<float> pcm;
  std::vector<FrameResult> frames;
};

Output run(Session &s, const std::vector<float> &pcm, size_t first = 0, size_t count = SIZE_MAX) {
  const size_t F = size_t(s.frame_size());
  Output r;
  for (size_t i = first * F; i < pcm.size() && r.frames.size() < count; i += F) {
    FrameResult f = s.process(pcm.data() + i, std::min(F, pcm.size() - i));
    r.pcm.insert(r.pcm.end(), f.pcm.begin(), f.pcm.end());
    r.frames.push_back(std::move(f));
  }
  return r;
}

double max_diff(const std::vector<float> &a, const std::vector<float> &b) {
  if (a.size() != b.size()) return 1e9;
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::abs(a[i] - b[i])));
  return d;
}

std::string spaced(std::string piece) {
  const std::string space = "\xE2\x96\x81";
  for (size_t p; (p = piece.find(space)) != std::string::npos;) piece.replace(p, space.size(), " ");
  return piece;
}

}  // namespace

TEST(Session, ReproducesTheReferenceConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  Session s(fixture_model(), fixture_options(io));
  EXPECT_EQ(s.frame_size(), 1920);
  EXPECT_EQ(s.sample_rate(), 24000);
  s.start();
  EXPECT_EQ(s.prompt_steps(), 65);
  Output r = run(s, io.user_pcm);
  ASSERT_EQ(r.frames.size(), io.text_pieces.size());
  EXPECT_LT(max_diff(r.pcm, io.out_pcm), 1e-4);
  for (size_t i = 0; i < r.frames.size(); ++i) {
    const FrameResult &f = r.frames[i];
    EXPECT_EQ(f.step, int64_t(i));
    EXPECT_EQ(f.pcm.size(), 1920u);
    EXPECT_EQ(s.model().tokenizer().piece(f.text_id), io.text_pieces[i]) << "step " << i;
    const bool word = f.text_id != 0 && f.text_id != 3;
    EXPECT_EQ(f.text, word ? spaced(io.text_pieces[i]) : "") << "step " << i;
  }
}

// Mimi in bf16 (ModelOptions::mimi_dtype): where it encodes the user's audio
// to the reference's codes (on the fixtures it does; a near tie may flip a
// code elsewhere, and the LM then hears something else), the reference's
// conversation: its text exactly, its audio within bf16 rounding.
TEST(Session, Bf16MimiKeepsTheReferenceConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  ModelOptions options;
  options.mimi_dtype = at::kBFloat16;
  auto model = DuplexModel::acquire(fixture_files(), at::Device(at::kCPU), options);
  EXPECT_EQ(model->mimi().dtype(), at::kBFloat16);
  EXPECT_NE(model, fixture_model());
  EXPECT_EQ(model->lm(), fixture_model()->lm());  // only the codec differs
  Session s(model, fixture_options(io));
  s.start();
  Output r = run(s, io.user_pcm);
  ASSERT_EQ(r.frames.size(), io.text_pieces.size());
  const at::Tensor user = at::tensor(io.user_pcm).view({1, 1, -1});
  if (!at::equal(model->mimi().encode(user), fixture_model()->mimi().encode(user))) {
    GTEST_SKIP() << "bf16 Mimi gives other codes for this fixture's user audio";
  }
  for (size_t i = 0; i < r.frames.size(); ++i)
    EXPECT_EQ(s.model().tokenizer().piece(r.frames[i].text_id), io.text_pieces[i]) << "step " << i;
  const double diff = max_diff(r.pcm, io.out_pcm);
  EXPECT_GT(diff, 1e-4);  // past fp32 rounding: it did run in bf16
  EXPECT_LT(diff, 5e-2);
}

TEST(Session, ResetRestartsTheConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  Session s(fixture_model(), fixture_options(io));
  Output first = run(s, io.user_pcm, 0, 10);  // process() starts it
  s.reset();
  EXPECT_FALSE(s.started());
  Output again = run(s, io.user_pcm, 0, 10);
  EXPECT_EQ(max_diff(first.pcm, again.pcm), 0.0);
  EXPECT_EQ(again.frames.front().step, 0);
  s.start();  // start() also restarts
  EXPECT_EQ(max_diff(run(s, io.user_pcm, 0, 10).pcm, first.pcm), 0.0);
}

TEST(Session, SharedModelIndependentConversations) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  EXPECT_EQ(model, fixture_model());  // one load
  Session a(model, fixture_options(io)), b(model, fixture_options(io));
  // b hears other audio, interleaved with a.
  std::vector<float> other(io.user_pcm.rbegin(), io.user_pcm.rend());
  Output ra, rb;
  for (size_t k = 0; k < 24; ++k) {
    Output x = run(a, io.user_pcm, k, 1), y = run(b, other, k, 1);
    ra.pcm.insert(ra.pcm.end(), x.pcm.begin(), x.pcm.end());
    rb.pcm.insert(rb.pcm.end(), y.pcm.begin(), y.pcm.end());
  }
  EXPECT_LT(max_diff(ra.pcm, io.out_pcm), 1e-4);
  Session alone(model, fixture_options(io));
  EXPECT_EQ(max_diff(run(alone, other).pcm, rb.pcm), 0.0);
}

TEST(Session, OptionsApplyAtTheNextStart) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  Session s(fixture_model(), fixture_options(io));
  s.start();
  const int64_t with_prompt = s.prompt_steps();
  SessionOptions o = fixture_options(io);
  o.prompt = "";
  s.set_options(o);
  EXPECT_EQ(s.prompt_steps(), with_prompt);
  s.start();
  EXPECT_EQ(s.prompt_steps(), with_prompt - 43);  // the prompt's 43 tokens
  o.voice_path = "";
  s.set_options(o);
  s.start();
  EXPECT_EQ(s.prompt_steps(), 12);  // the two silences
}

TEST(Session, SampledConversationsFollowTheSeed) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  SessionOptions o = fixture_options(io);
  o.sampling.greedy = false;
  o.seed = 7;
  Session a(fixture_model(), o), b(fixture_model(), o);
  EXPECT_EQ(max_diff(run(a, io.user_pcm, 0, 8).pcm, run(b, io.user_pcm, 0, 8).pcm), 0.0);
}

TEST(Session, PartialAndOversizedFrames) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  Session s(fixture_model(), fixture_options(io));
  std::vector<float> half(io.user_pcm.begin(), io.user_pcm.begin() + 960);
  EXPECT_EQ(s.process(half.data(), half.size()).pcm.size(), 1920u);
  std::vector<float> big(1921);
  EXPECT_THROW(s.process(big.data(), big.size()), Error);
}

TEST(Session, BadVoiceFailsAtStart) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  SessionOptions o = fixture_options(io);
  o.voice_path = test::fixtures_dir() + "/lm/config.json.pt";
  Session s(fixture_model(), o);
  EXPECT_THROW(s.start(), Error);
}

// Sessions in one LockstepBatch: each conversation is the one it would be
// alone, their frames share batched steps, slots run out and come back.
namespace {

SessionOptions batched(SessionOptions o, int64_t slots) {
  o.batch = slots;
  return o;
}

}  // namespace

TEST(BatchedSession, ReproducesTheReferenceConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  Session s(fixture_model(), batched(fixture_options(io), 3));
  s.start();
  ASSERT_TRUE(s.batch());
  EXPECT_EQ(s.batch()->slots(), 3);
  EXPECT_EQ(s.batch()->active(), 1);
  EXPECT_EQ(s.prompt_steps(), 65);
  Output r = run(s, io.user_pcm);
  EXPECT_LT(max_diff(r.pcm, io.out_pcm), 1e-4);
  for (size_t i = 0; i < r.frames.size(); ++i)
    EXPECT_EQ(s.model().tokenizer().piece(r.frames[i].text_id), io.text_pieces[i]) << "step " << i;
}

TEST(BatchedSession, SampledConversationsFollowTheirSeeds) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  std::vector<float> other(io.user_pcm.rbegin(), io.user_pcm.rend());
  SessionOptions oa = fixture_options(io);
  oa.sampling.greedy = false;
  oa.seed = 11;
  SessionOptions ob = oa;
  ob.seed = 12;
  Session a(model, batched(oa, 2)), b(model, batched(ob, 2));
  a.start();
  b.start();
  ASSERT_EQ(a.batch(), b.batch());
  Output ra, rb;
  std::thread ta([&] { ra = run(a, io.user_pcm, 0, 20); });
  std::thread tb([&] { rb = run(b, other, 0, 20); });
  ta.join();
  tb.join();
  Session alone_a(model, oa), alone_b(model, ob);
  EXPECT_LT(max_diff(run(alone_a, io.user_pcm, 0, 20).pcm, ra.pcm), 1e-5);
  EXPECT_LT(max_diff(run(alone_b, other, 0, 20).pcm, rb.pcm), 1e-5);
  EXPECT_GT(max_diff(ra.pcm, rb.pcm), 0.0);
}

// A join's time in its parts (what a handshake waits on when many calls
// start at once): each part measured, together within the whole.
TEST(BatchedSession, StartTimesSayWhereTheJoinWent) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  SessionOptions other_role = fixture_options(io);
  other_role.prompt += " You like to talk about football.";
  Session a(model, batched(fixture_options(io), 3)), b(model, batched(fixture_options(io), 3)),
      c(model, batched(other_role, 3));
  a.start();
  b.start();
  c.start();
  ASSERT_EQ(a.batch(), c.batch());
  for (const Session *s : {&a, &b, &c}) {
    const StartTimes &t = s->start_times();
    const auto &j = t.join;
    EXPECT_GT(j.prompts_ms, 0.0);
    for (double part : {j.queued_ms, j.capture_ms, j.activate_ms}) EXPECT_GE(part, 0.0);
    EXPECT_LE(j.queued_ms + j.prompts_ms + j.capture_ms + j.activate_ms, t.prompts_ms + 1e-3);
  }
  EXPECT_FALSE(a.start_times().prompts_cached);
  EXPECT_TRUE(b.start_times().prompts_cached);
  // A role of its own: only the voice's phase came from the cache.
  EXPECT_FALSE(c.start_times().prompts_cached);
  EXPECT_TRUE(c.start_times().voice_cached);
  EXPECT_FALSE(b.start_times().voice_cached);
}

TEST(BatchedSession, SameOptionsStepTogether) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  std::vector<float> other(io.user_pcm.rbegin(), io.user_pcm.rend());
  Session a(model, batched(fixture_options(io), 2)), b(model, batched(fixture_options(io), 2));
  a.start();
  b.start();
  ASSERT_EQ(a.batch(), b.batch());
  Output ra, rb;
  const size_t frames = io.user_pcm.size() / size_t(a.frame_size());
  std::thread ta([&] { ra = run(a, io.user_pcm); });
  std::thread tb([&] { rb = run(b, other); });
  ta.join();
  tb.join();
  EXPECT_LT(max_diff(ra.pcm, io.out_pcm), 1e-4);
  Session alone(model, fixture_options(io));
  EXPECT_LT(max_diff(run(alone, other).pcm, rb.pcm), 1e-5);
  // Both submit every frame: most steps carry both rows.
  EXPECT_EQ(a.batch()->widest_step(), 2);
  EXPECT_LT(a.batch()->steps(), int64_t(2 * frames));
}

TEST(BatchedSession, DifferentSamplingMeansAnotherBatch) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  SessionOptions o = batched(fixture_options(io), 2);
  Session a(model, o);
  o.sampling.greedy = false;
  Session b(model, o);
  a.start();
  b.start();
  EXPECT_NE(a.batch(), b.batch());
  EXPECT_EQ(a.batch()->active(), 1);
}

TEST(BatchedSession, FullBatchFailsAtStartAndSlotsComeBack) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  const SessionOptions o = batched(fixture_options(io), 2);
  auto a = std::make_unique<Session>(model, o);
  Session b(model, o), c(model, o);
  a->start();
  b.start();
  try {
    c.start();
    FAIL() << "a third conversation in 2 slots";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("all 2 slots"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(c.started());
  auto batch = b.batch();
  a->reset();  // forgetting is not leaving: the slot stays a's until it goes
  EXPECT_EQ(batch->active(), 2);
  a = nullptr;  // a leaves
  EXPECT_EQ(batch->active(), 1);
  c.start();  // and c gets its slot, reset: the reference conversation
  EXPECT_LT(max_diff(run(c, io.user_pcm).pcm, io.out_pcm), 1e-4);
}

TEST(BatchedSession, AnIdleMemberDoesNotStallTheOthers) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  auto model = fixture_model();
  const SessionOptions o = batched(fixture_options(io), 2);
  Session idle(model, o), busy(model, o);
  idle.start();
  busy.start();
  // busy steps alone: each step waits at most the gather time for idle.
  const auto t0 = std::chrono::steady_clock::now();
  Output r = run(busy, io.user_pcm);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(max_diff(r.pcm, io.out_pcm), 1e-4);
  EXPECT_LT(s, 60.0);
  EXPECT_EQ(busy.batch()->widest_step(), 1);
}

TEST(Session, WarmUpChangesNothing) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  Io io = fixture_io();
  for (int64_t slots : {1, 2}) {
    SessionOptions o = batched(fixture_options(io), slots);
    o.warm_up = true;
    Session s(fixture_model(), o);
    s.start();
    EXPECT_EQ(s.prompt_steps(), 65);
    EXPECT_LT(max_diff(run(s, io.user_pcm).pcm, io.out_pcm), 1e-4) << slots << " slots";
    s.start();  // once: a restart goes straight to the prompts
    EXPECT_LT(max_diff(run(s, io.user_pcm, 0, 10).pcm, std::vector<float>(io.out_pcm.begin(), io.out_pcm.begin() + 10 * s.frame_size())), 1e-4);
  }
}
