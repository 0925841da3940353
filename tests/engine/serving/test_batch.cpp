// Lock-step batched serving: every conversation in a batch gives exactly
// what it gives alone, whenever it joins, and a re-joined slot starts fresh.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "serving/batch.h"
#include "lm/random_weights.h"
#include "lm/lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;
using namespace personaplex::serving;

namespace {

std::vector<int64_t> user_codes(uint64_t who, int64_t step, int64_t card) {
  std::vector<int64_t> u(kAudioCodebooks);
  for (int64_t q = 0; q < kAudioCodebooks; ++q) u[size_t(q)] = (int64_t(who) * 13 + step * 37 + q * 101) % card;
  return u;
}

struct Plan {
  Prompt prompt;
  uint64_t seed;
  int64_t join_at, steps;
  int64_t pause_every = 0;  // in the server, no input at steps t % pause_every == 0 (a row in use that waits)
  // Joined in parts: reserved and prefilled at join_at, a member only this
  // many steps of the others later (its idle row steps meanwhile).
  int64_t activate_after = 0;
};

Prompt make_prompt(int64_t frames, int64_t text, const LmConfig &c, int64_t silence = 6) {
  Prompt p;
  if (frames > 0) p.voice.codes = at::randint(0, c.card, {kAudioCodebooks, frames}, at::kLong);
  for (int64_t i = 0; i < text; ++i) p.text_tokens.push_back((i * 7 + frames) % c.text_card);
  p.silence_steps = silence;
  return p;
}

// One step of one conversation: its tokens and, with keep_logits, its logits.
struct Out {
  std::vector<int64_t> tokens;
  at::Tensor text_logits, audio_logits;
};

Out out_of(const std::optional<StepResult> &r, const Conversation &conv) {
  Out o;
  if (r) o.tokens = r->tokens;
  // Copies: on the CPU they may alias the conversation's buffers.
  if (conv.options().keep_logits)
    o.text_logits = conv.last_text_logits().clone(), o.audio_logits = conv.last_audio_logits().clone();
  return o;
}

std::vector<Out> alone(const std::shared_ptr<const LmModel> &model, const Plan &p, ConversationOptions opts) {
  opts.seed = p.seed;
  Conversation conv(model, opts);
  run_prompts(conv, p.prompt);
  std::vector<Out> out;
  for (int64_t s = 0; s < p.steps; ++s)
    out.push_back(out_of(conv.step_user(user_codes(p.seed, s, model->config().card)), conv));
  return out;
}

struct Together {
  std::vector<std::vector<Out>> out;  // per plan
  int64_t mixed_steps = 0;            // steps with split and unsplit caches stepping together
  int64_t holes = 0;                  // steps with a row below the highest stepping one not stepping
};

// Runs the plans through one server; each joins at its step and leaves
// after its steps.
// static_shapes: the server steps with a CUDA graph's rounded-up shapes
// (more rows and slots), eagerly.
Together together(const std::shared_ptr<const LmModel> &model, const std::vector<Plan> &plans,
                  const ConversationOptions &opts, int64_t slots, bool static_shapes = false) {
  BatchServer server(model, slots, opts);
  server.use_static_shapes(static_shapes);
  Together run;
  run.out.resize(plans.size());
  std::vector<int64_t> slot(plans.size(), -1), done(plans.size(), 0), reserved(plans.size(), -1);
  for (int64_t t = 0; t <= 1000; ++t) {
    bool running = false;
    std::map<int64_t, std::vector<int64_t>> in;
    std::map<int64_t, size_t> who;
    for (size_t i = 0; i < plans.size(); ++i) {
      if (t == plans[i].join_at && plans[i].activate_after > 0) {
        reserved[i] = server.reserve(plans[i].seed);
        server.prefill(reserved[i], plans[i].prompt);
      } else if (t == plans[i].join_at) {
        slot[i] = server.join(plans[i].prompt, plans[i].seed);
      }
      if (reserved[i] >= 0 && t == plans[i].join_at + plans[i].activate_after) {
        server.activate(reserved[i]);
        slot[i] = reserved[i];
        reserved[i] = -1;
      }
      if (reserved[i] >= 0) running = true;
      if (slot[i] < 0 || done[i] >= plans[i].steps) continue;
      running = true;
      if (plans[i].pause_every > 0 && t % plans[i].pause_every == 0) continue;
      in[slot[i]] = user_codes(plans[i].seed, done[i], model->config().card);
      who[slot[i]] = i;
    }
    if (!running && t > 100) break;
    int64_t split = 0;
    for (const auto &[s, codes] : in) split += server.conversation(s).temporal_state().kv.split();
    run.mixed_steps += split > 0 && split < int64_t(in.size());
    run.holes += !in.empty() && in.rbegin()->first + 1 > int64_t(in.size());
    for (auto &[s, r] : server.step(in)) {
      size_t i = who[s];
      run.out[i].push_back(out_of(r, server.conversation(s)));
      if (++done[i] == plans[i].steps) server.leave(s);
    }
  }
  return run;
}

void expect_close(const at::Tensor &a, const at::Tensor &b, const std::string &what) {
  ASSERT_EQ(a.defined(), b.defined()) << what;
  if (!a.defined()) return;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  if (a.numel() == 0) return;
  // float32 rounding, relative to the logits' size: batched and alone run
  // GEMMs of other shapes, which some BLAS libraries sum in another order.
  const double scale = std::max(1.0, b.abs().max().item<double>());
  EXPECT_LE((a - b).abs().max().item<double>(), 1e-5 * scale) << what;
}

Together expect_batch_equals_alone(const std::shared_ptr<const LmModel> &model, const std::vector<Plan> &plans,
                                   const ConversationOptions &opts, int64_t slots, bool static_shapes = false) {
  Together run = together(model, plans, opts, slots, static_shapes);
  for (size_t i = 0; i < plans.size(); ++i) {
    auto ref = alone(model, plans[i], opts);
    EXPECT_EQ(run.out[i].size(), ref.size()) << "conversation " << i;
    for (size_t s = 0; s < std::min(ref.size(), run.out[i].size()); ++s) {
      const std::string where = "conversation " + std::to_string(i) + " step " + std::to_string(s);
      EXPECT_EQ(run.out[i][s].tokens, ref[s].tokens) << where;
      expect_close(run.out[i][s].text_logits, ref[s].text_logits, where + " text logits");
      expect_close(run.out[i][s].audio_logits, ref[s].audio_logits, where + " audio logits");
      if (::testing::Test::HasFailure()) return run;
    }
  }
  return run;
}

ConversationOptions sampled() { return ConversationOptions{}; }

ConversationOptions with_logits(ConversationOptions o, bool pin = true) {
  o.keep_logits = true;
  o.pin_prompt = pin;
  return o;
}

}  // namespace

TEST(Batch, RandomConfigsGreedyAndSampled) {
  at::manual_seed(7);
  for (const auto &c : {test::tiny_lm_config(32, 2, 1, 40), test::tiny_lm_config(64, 4, 2, 100)}) {
    auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
    std::vector<Plan> plans = {{make_prompt(4, 3, c), 1, 0, 30},
                               {make_prompt(0, 5, c), 2, 3, 20},
                               {make_prompt(6, 0, c), 3, 3, 25},
                               {make_prompt(2, 2, c), 4, 9, 40}};
    for (int64_t n = 1; n <= 4; ++n) {
      std::vector<Plan> some(plans.begin(), plans.begin() + n);
      SCOPED_TRACE("dim " + std::to_string(c.dim) + ", " + std::to_string(n) + " conversations");
      {
        SCOPED_TRACE("greedy");
        expect_batch_equals_alone(model, some, test::greedy(), n);
      }
      SCOPED_TRACE("sampled");
      expect_batch_equals_alone(model, some, sampled(), n);
    }
    // Slots reused: four conversations through two slots, past the context.
    std::vector<Plan> reuse = {{make_prompt(3, 2, c), 5, 0, 10},
                               {make_prompt(1, 1, c), 6, 0, 60},
                               {make_prompt(2, 4, c), 7, 12, 15},
                               {make_prompt(5, 1, c), 8, 30, 12}};
    expect_batch_equals_alone(model, reuse, sampled(), 2);
    expect_batch_equals_alone(model, reuse, test::greedy(), 2);
  }
}

// A join's prompts written while the others step: the reserved slot's idle
// row must leave them alone, in steps of every shape.
TEST(Batch, PromptsPrefilledBesideTheSteps) {
  at::manual_seed(9);
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  std::vector<Plan> plans = {{make_prompt(3, 2, c), 1, 0, 30},
                             {make_prompt(2, 3, c), 2, 2, 20, 0, 5},
                             {make_prompt(4, 1, c), 3, 4, 15, 0, 1}};
  for (bool static_shapes : {false, true}) {
    SCOPED_TRACE(static_shapes ? "static shapes" : "tight shapes");
    expect_batch_equals_alone(model, plans, with_logits(test::greedy()), 3, static_shapes);
    expect_batch_equals_alone(model, plans, sampled(), 3, static_shapes);
  }
}

TEST(Batch, ReservedSlotsAreCheckedAndReleased) {
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  BatchServer server(model, 1, test::greedy());
  EXPECT_THROW(server.prefill(0, make_prompt(1, 1, c)), Error);
  const int64_t slot = server.reserve(1);
  EXPECT_THROW(server.reserve(2), BusyError);
  EXPECT_FALSE(server.in_use(slot));
  server.release(slot);
  EXPECT_EQ(server.reserve(3), slot);
  server.prefill(slot, make_prompt(1, 1, c));
  server.activate(slot);
  EXPECT_TRUE(server.in_use(slot));
  EXPECT_THROW(server.activate(slot), Error);
}

TEST(Batch, HolesInTheSlotRangeAndLogits) {
  at::manual_seed(9);
  LmConfig c = test::tiny_lm_config(64, 4, 2, 100);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 5, 0.2));
  // Slot 1 leaves early and is taken again later; slot 2 waits every third
  // step; prompts of different lengths.
  std::vector<Plan> plans = {{make_prompt(3, 2, c), 1, 0, 40},
                             {make_prompt(0, 1, c), 2, 0, 8},
                             {make_prompt(2, 0, c), 3, 2, 35, 3},
                             {make_prompt(4, 3, c), 4, 20, 20},
                             {make_prompt(1, 1, c), 5, 25, 15, 4}};
  for (const auto &opts : {with_logits(test::greedy()), with_logits(sampled())}) {
    Together run = expect_batch_equals_alone(model, plans, opts, 5);
    EXPECT_GT(run.holes, 0);
  }
}

TEST(Batch, SplitAndUnsplitCachesInOneStep) {
  at::manual_seed(10);
  // A tiny context: prompts are pinned, conversations roll over (their
  // caches split) while later ones have not yet.
  for (const auto &c : {test::tiny_lm_config(32, 2, 2, 24), test::tiny_lm_config(64, 4, 1, 40)}) {
    auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 6, 0.2));
    std::vector<Plan> plans = {{make_prompt(3, 2, c, 2), 1, 0, 90},
                               {make_prompt(0, 1, c, 1), 2, 0, 8},
                               {make_prompt(2, 0, c, 2), 3, 2, 80, 3},
                               {make_prompt(4, 3, c, 1), 4, 30, 60},
                               {make_prompt(1, 1, c, 2), 5, 45, 40, 4}};
    SCOPED_TRACE("context " + std::to_string(c.context));
    // Split rows score their pinned slots through an additive mask, which
    // rounds differently (logits within 1e-6 here): greedy only, as a
    // sampled race may break a near tie the other way.
    Together run = expect_batch_equals_alone(model, plans, with_logits(test::greedy()), 4);
    EXPECT_GT(run.mixed_steps, 0);
    EXPECT_GT(run.holes, 0);
    // Unpinned: rolled-over rings, never split; sampled too.
    for (const auto &opts : {with_logits(test::greedy(), false), with_logits(sampled(), false)}) {
      SCOPED_TRACE(opts.sampling.greedy ? "greedy" : "sampled");
      EXPECT_EQ(expect_batch_equals_alone(model, plans, opts, 4).mixed_steps, 0);
    }
  }
}

TEST(Batch, StaticShapesRoundUp) {
  KVRows kv(1, 40, 1, 2999, 4, at::TensorOptions());
  EXPECT_EQ(kv.allocated(), 3008);
  auto shape = [&](int64_t rows, int64_t span, int64_t pinned) {
    return static_shape(BatchShape{rows, span, pinned, 8}, kv).key();
  };
  EXPECT_EQ(shape(1, 16, 0), (std::array<int64_t, 4>{1, 256, 0, 8}));
  EXPECT_EQ(shape(3, 512, 0), (std::array<int64_t, 4>{4, 512, 0, 8}));
  EXPECT_EQ(shape(5, 528, 0), (std::array<int64_t, 4>{8, 768, 0, 8}));
  EXPECT_EQ(shape(9, 3008, 300), (std::array<int64_t, 4>{16, 3008, 512, 8}));
  EXPECT_EQ(shape(37, 2992, 2900), (std::array<int64_t, 4>{40, 3008, 3008, 8}));
}

// A batch narrowed by calls that left replays the cheapest captured shape
// that covers it rather than capturing while every call waits.
TEST(Batch, NarrowedBatchesReplayAWiderGraph) {
  KVRows kv(1, 40, 1, 2999, 4, at::TensorOptions());
  std::set<std::array<int64_t, 4>> captured = {{40, 512, 0, 8}, {24, 768, 0, 8}, {16, 3008, 0, 8}, {8, 512, 256, 8}};
  auto has = [&](const BatchShape &s) { return captured.count(s.key()) > 0; };
  auto cover = [&](int64_t rows, int64_t span, int64_t pinned) {
    return covering_shape(BatchShape{rows, span, pinned, 8}, kv, has).key();
  };
  EXPECT_EQ(cover(40, 512, 0), (std::array<int64_t, 4>{40, 512, 0, 8}));    // captured: itself
  EXPECT_EQ(cover(32, 512, 0), (std::array<int64_t, 4>{40, 512, 0, 8}));    // wider
  EXPECT_EQ(cover(16, 512, 0), (std::array<int64_t, 4>{24, 768, 0, 8}));    // the least work of three
  EXPECT_EQ(cover(8, 2048, 0), (std::array<int64_t, 4>{16, 3008, 0, 8}));   // a longer span
  EXPECT_EQ(cover(4, 256, 256), (std::array<int64_t, 4>{8, 512, 256, 8}));  // the same pinned slots
  EXPECT_EQ(cover(4, 256, 0), (std::array<int64_t, 4>{24, 768, 0, 8}));
  EXPECT_EQ(cover(24, 1024, 0), (std::array<int64_t, 4>{24, 1024, 0, 8}));  // nothing covers it
  EXPECT_EQ(cover(8, 512, 512), (std::array<int64_t, 4>{8, 512, 512, 8}));
  EXPECT_EQ(covering_shape(BatchShape{16, 512, 0, 4}, kv, has).key(), (std::array<int64_t, 4>{16, 512, 0, 4}));
}

TEST(Batch, StaticShapesGiveTheSameResults) {
  at::manual_seed(12);
  // Rows past the highest stepping one (never joined, left, waiting) and
  // unwritten slots are computed and ignored: the results stay those alone.
  for (const auto &c : {test::tiny_lm_config(32, 2, 2, 24), test::tiny_lm_config(64, 4, 2, 100)}) {
    auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 6, 0.2));
    std::vector<Plan> plans = {{make_prompt(3, 2, c, 2), 1, 0, 70},
                               {make_prompt(0, 1, c, 1), 2, 0, 8},
                               {make_prompt(2, 0, c, 2), 3, 2, 60, 3},
                               {make_prompt(4, 3, c, 1), 4, 20, 40},
                               {make_prompt(1, 1, c, 2), 5, 30, 30, 4}};
    SCOPED_TRACE("context " + std::to_string(c.context));
    Together run = expect_batch_equals_alone(model, plans, with_logits(test::greedy()), 7, true);
    EXPECT_GT(run.holes, 0);
    if (c.context < 50) EXPECT_GT(run.mixed_steps, 0);
    for (const auto &opts : {with_logits(test::greedy(), false), with_logits(sampled(), false)})
      expect_batch_equals_alone(model, plans, opts, 7, true);
  }
}

TEST(Batch, SlotsAreRowsOfOneStorage) {
  at::manual_seed(11);
  LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 4, 0.2));
  BatchServer server(model, 3, test::greedy());
  for (int64_t s = 0; s < 3; ++s) EXPECT_EQ(server.join(Prompt{}, uint64_t(s)), s);
  const at::Tensor &k0 = server.conversation(0).temporal_state().kv.layer(0).keys;
  const at::Tensor &k2 = server.conversation(2).temporal_state().kv.layer(0).keys;
  EXPECT_EQ(k0.size(0), 1);
  EXPECT_EQ(static_cast<const char *>(k2.data_ptr()) - static_cast<const char *>(k0.data_ptr()),
            2 * k0.stride(0) * int64_t(k0.element_size()));
  // A join takes the lowest free slot.
  server.leave(2);
  server.leave(0);
  EXPECT_EQ(server.join(Prompt{}, 5), 0);
  EXPECT_EQ(server.join(Prompt{}, 6), 2);
}

TEST(Batch, FixtureModelMatchesItsConversation) {
  PERSONAPLEX_REQUIRE_FIXTURES();
  test::LmIo io = test::lm_io();
  auto model = test::tiny_lm();
  auto prompt = test::fixture_prompt(io, model->config());
  BatchServer server(model, 3, test::greedy());
  // Two others at different offsets around the fixture's conversation.
  int64_t other = server.join(make_prompt(3, 2, model->config()), 9);
  for (int64_t s = 0; s < 5; ++s) server.step({{other, user_codes(9, s, model->config().card)}});
  int64_t slot = server.join(prompt, 0);
  int64_t late = -1;
  std::vector<at::Tensor> cols;
  for (int64_t s = 0; s < io.user_codes.size(2); ++s) {
    if (s == 4) late = server.join(Prompt{}, 11);
    std::map<int64_t, std::vector<int64_t>> in = {{slot, test::user_frame(io, s)},
                                                  {other, user_codes(9, s + 5, model->config().card)}};
    if (late >= 0) in[late] = user_codes(11, s, model->config().card);
    auto out = server.step(in);
    ASSERT_TRUE(out.at(slot).has_value());
    cols.push_back(at::tensor(out.at(slot)->tokens, at::kLong));
  }
  EXPECT_TRUE(at::equal(at::stack(cols, 1).unsqueeze(0), io.out_tokens));
}

TEST(Batch, SlotsAreCheckedAndFreed) {
  at::manual_seed(8);
  LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 4, 0.2));
  BatchServer server(model, 2, test::greedy());
  int64_t a = server.join(Prompt{}, 1), b = server.join(Prompt{}, 2);
  EXPECT_NE(a, b);
  EXPECT_EQ(server.active(), 2);
  EXPECT_THROW(server.join(Prompt{}, 3), Error);
  EXPECT_THROW(server.step({{5, user_codes(0, 0, c.card)}}), Error);
  EXPECT_THROW(server.step({{a, std::vector<int64_t>(3, 1)}}), Error);
  server.step({{a, user_codes(0, 0, c.card)}});
  server.leave(a);
  EXPECT_THROW(server.leave(a), Error);
  EXPECT_EQ(server.join(Prompt{}, 4), a);
  EXPECT_EQ(server.conversation(a).steps(), 12);  // a fresh conversation: its prompt only
  EXPECT_FALSE(server.cuda_graphs_active());  // on the CPU
  EXPECT_EQ(server.graph_steps(), 0);
}

// Calls with one voice and role: the later joins start from the first one's
// prompts (the batch's prompt cache), also when joined in parts, and still
// give what each gives alone.
TEST(Batch, JoinsWithOnePromptShareItsPrefill) {
  at::manual_seed(13);
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 60);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  const Prompt shared = make_prompt(4, 3, c);
  std::vector<Plan> plans = {{shared, 1, 0, 30},
                             {shared, 2, 0, 20},
                             {shared, 3, 4, 25, 0, 3},
                             {make_prompt(2, 2, c), 4, 6, 20},
                             {shared, 5, 9, 15, 3}};
  for (const auto &opts : {sampled(), test::greedy()}) {
    SCOPED_TRACE(opts.sampling.greedy ? "greedy" : "sampled");
    expect_batch_equals_alone(model, plans, opts, 5);
  }
  BatchServer server(model, 3, sampled());
  bool cached[3];
  for (int i = 0; i < 3; ++i) {
    const int64_t slot = server.reserve(uint64_t(i));
    cached[i] = server.prefill(slot, shared);
    server.activate(slot);
  }
  EXPECT_FALSE(cached[0]);
  EXPECT_TRUE(cached[1]);
  EXPECT_TRUE(cached[2]);
  EXPECT_EQ(server.prompt_cache().misses(), 1);
  EXPECT_EQ(server.prompt_cache().hits(), 2);
}

// The shape a join captures ahead is the shape its first live step takes
// (with a graph's rounded-up shapes, as on a GPU).
TEST(Batch, JoinShapeIsTheFirstStepsShape) {
  at::manual_seed(14);
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 500);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  BatchServer server(model, 12, sampled());
  server.use_static_shapes(true);
  std::map<int64_t, std::vector<int64_t>> in;
  for (int64_t i = 0; i < 10; ++i) {
    const int64_t slot = server.reserve(uint64_t(i));
    // Prompts of growing length: the last ones widen the span.
    server.prefill(slot, make_prompt(3 + 30 * i, 2, c));
    const BatchShape first = server.join_shape(slot), second = server.join_shape(slot, 1);
    server.activate(slot);
    for (int64_t t = 0; t < 2; ++t) {
      for (auto &[s, codes] : in) codes = user_codes(uint64_t(s), t, c.card);
      in[slot] = user_codes(uint64_t(slot), t, c.card);
      server.step(in);
      EXPECT_EQ(server.last_shape().key(), (t == 0 ? first : second).key()) << "join " << i << " step " << t;
    }
  }
  EXPECT_GT(server.last_shape().span, 256);
  EXPECT_EQ(server.last_shape().rows, 12);
}

// Calls that join together (none has stepped since its prompts): their first
// step's shape counts each row's own depformer steps, not a live step's.
TEST(Batch, JoinShapeOfCallsJoiningTogether) {
  at::manual_seed(15);
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 200);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
  for (const bool uncached : {false, true}) {
    SCOPED_TRACE(uncached ? "prompts run each" : "prompts cached");
    BatchServer server(model, 6, sampled());
    server.use_static_shapes(true);
    std::map<int64_t, std::vector<int64_t>> in;
    BatchShape first;
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t slot = server.reserve(uint64_t(i));
      server.prefill(slot, make_prompt(5 + 7 * i, 2, c), {}, !uncached);
      first = server.join_shape(slot);
      server.activate(slot);
      in[slot] = {};
    }
    for (int64_t t = 0; t < 3; ++t) {
      const BatchShape expected = t == 0 ? first : server.join_shape(0);
      for (auto &[s, codes] : in) codes = user_codes(uint64_t(s), t, c.card);
      server.step(in);
      EXPECT_EQ(server.last_shape().key(), expected.key()) << "step " << t;
    }
  }
}

// With an fp8 KV cache each row's keys and values are encoded the same
// batched and alone (and the same when a join's prompts are prefilled), so
// a batch still gives what each conversation gives alone, split rows too.
TEST(Batch, Fp8KvCacheBatchedIsAlone) {
  at::manual_seed(13);
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 24);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 6, 0.2))
                   ->with_kv_format(KvFormat::kFp8);
  std::vector<Plan> plans = {{make_prompt(3, 2, c, 2), 1, 0, 70},
                             {make_prompt(0, 1, c, 1), 2, 0, 8},
                             {make_prompt(2, 0, c, 2), 3, 2, 60, 3},
                             {make_prompt(4, 3, c, 1), 4, 20, 40, 0, 2}};
  Together run = expect_batch_equals_alone(model, plans, with_logits(test::greedy()), 4);
  EXPECT_GT(run.mixed_steps, 0);
  expect_batch_equals_alone(model, plans, with_logits(sampled(), false), 4, true);
  BatchServer server(model, 2, test::greedy());
  server.join(Prompt{}, 1);
  const KvLayer &kv = server.conversation(0).temporal_state().kv.layer(0);
  EXPECT_EQ(kv.keys.scalar_type(), at::kByte);
  EXPECT_TRUE(kv.fp8());
}

// On a GPU: calls leaving the top slots narrow the batch to a width never
// captured at this span; its next step replays the wider graph it has (no
// capture while the others wait).
TEST(Batch, CudaNarrowedBatchReplaysTheWiderGraph) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCUDA), at::kFloat, 3, 0.2));
  BatchServer server(model, 16, test::greedy());
  if (!server.cuda_graphs_active()) GTEST_SKIP() << "CUDA graphs are off";
  for (int64_t s = 0; s < 16; ++s) EXPECT_EQ(server.join(Prompt{}, uint64_t(s)), s);
  int64_t t = 0;
  auto step = [&](int64_t rows) {
    std::map<int64_t, std::vector<int64_t>> in;
    for (int64_t s = 0; s < rows; ++s) in[s] = user_codes(uint64_t(s), t, c.card);
    ++t;
    return server.step(in);
  };
  for (int i = 0; i < 6; ++i) step(16);
  ASSERT_GT(server.graph_steps(), 0);
  ASSERT_EQ(server.last_shape().rows, 16);
  for (int64_t s = 8; s < 16; ++s) server.leave(s);
  const int64_t replays = server.graph_steps();
  EXPECT_EQ(step(8).size(), 8u);
  EXPECT_EQ(server.last_shape().rows, 16);
  EXPECT_EQ(server.graph_steps(), replays + 1);
}

// Layers kept in host memory (uploaded each step on a side stream): the
// batch step feeds them as the conversation step does.
TEST(Batch, HostLayersBatchedIsAlone) {
  const LmConfig c = test::tiny_lm_config(32, 2, 2, 40);
  auto model = test::loaded_random_lm(c, at::kCPU, 3, 1);
  ASSERT_TRUE(model->weights().transformer.layers[1].host);
  std::vector<Plan> plans = {{make_prompt(3, 2, c), 1, 0, 30}, {make_prompt(2, 3, c), 2, 2, 20, 0, 5},
                             {make_prompt(1, 1, c), 3, 4, 50}};
  expect_batch_equals_alone(model, plans, with_logits(test::greedy()), 3);
  expect_batch_equals_alone(model, plans, with_logits(sampled(), false), 3, true);
}

// On a GPU, in the batch server's CUDA graphs: the same tokens and logits
// as the weights held on the device.
TEST(Batch, CudaHostLayersAreTheDeviceModel) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const LmConfig c = test::tiny_lm_config(64, 4, 3, 40);
  std::vector<Plan> plans = {{make_prompt(3, 2, c), 1, 0, 40}, {make_prompt(2, 3, c), 2, 2, 30, 0, 5},
                             {make_prompt(1, 1, c), 3, 4, 60}};
  const ConversationOptions opts = with_logits(sampled());
  Together ref = together(test::loaded_random_lm(c, at::kCUDA, 3), plans, opts, 3);
  Together got = together(test::loaded_random_lm(c, at::kCUDA, 3, 2), plans, opts, 3);
  for (size_t i = 0; i < plans.size(); ++i) {
    ASSERT_EQ(got.out[i].size(), ref.out[i].size()) << "conversation " << i;
    for (size_t s = 0; s < ref.out[i].size(); ++s) {
      EXPECT_EQ(got.out[i][s].tokens, ref.out[i][s].tokens) << "conversation " << i << " step " << s;
      EXPECT_TRUE(at::equal(got.out[i][s].text_logits, ref.out[i][s].text_logits))
          << "conversation " << i << " step " << s;
    }
  }
}

// On a GPU the next step's noise is drawn on a side stream while the step
// runs: sampled runs repeat exactly, through paused rows and a slot left
// and joined again (whose new conversation draws into the same row).
TEST(Batch, CudaNoiseDrawnAheadRepeats) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  const LmConfig c = test::tiny_lm_config(32, 2, 1, 40);
  auto model = std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCUDA), at::kFloat, 3, 0.2));
  std::vector<Plan> plans = {{make_prompt(3, 2, c), 5, 0, 10},
                             {make_prompt(1, 1, c), 6, 0, 40, 3},
                             {make_prompt(2, 4, c), 7, 11, 15},
                             {make_prompt(5, 1, c), 8, 27, 12}};
  const Together first = together(model, plans, sampled(), 2);
  const Together again = together(model, plans, sampled(), 2);
  for (size_t i = 0; i < plans.size(); ++i) {
    ASSERT_EQ(first.out[i].size(), size_t(plans[i].steps)) << "conversation " << i;
    ASSERT_EQ(again.out[i].size(), first.out[i].size()) << "conversation " << i;
    for (size_t s = 0; s < first.out[i].size(); ++s)
      EXPECT_EQ(again.out[i][s].tokens, first.out[i][s].tokens) << "conversation " << i << " step " << s;
  }
}
