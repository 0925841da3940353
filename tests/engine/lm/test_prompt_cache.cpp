// The prompt cache: a conversation started from a cached prompt is the one
// that running the prompt gives, for any seed, greedy or sampled; prompts
// that differ in anything never share an entry.
#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "lm/prompt_cache.h"
#include "lm/random_weights.h"
#include "lm_fixture.h"

using namespace personaplex;
using namespace personaplex::lm;

namespace {

std::shared_ptr<const LmModel> tiny_model(int64_t context = 60) {
  const LmConfig c = test::tiny_lm_config(32, 2, 2, context);
  at::manual_seed(21);
  return std::make_shared<const LmModel>(random_lm_weights(c, at::Device(at::kCPU), at::kFloat, 3, 0.2));
}

Prompt codes_prompt(const LmConfig &c, int64_t frames, std::vector<int64_t> text) {
  Prompt p;
  at::manual_seed(frames);
  p.voice.codes = at::randint(0, c.card, {kAudioCodebooks, frames}, at::kLong);
  p.text_tokens = std::move(text);
  return p;
}

// The voice of a codes prompt as a voice file would store it.
Prompt stored_prompt(const std::shared_ptr<const LmModel> &model, std::vector<int64_t> text) {
  Conversation conv(model, test::greedy());
  Prompt p;
  p.voice.stored = run_prompts(conv, codes_prompt(model->config(), 5, {}), {}, true);
  p.text_tokens = std::move(text);
  return p;
}

std::vector<std::vector<int64_t>> talk(Conversation &conv, int64_t steps) {
  std::vector<std::vector<int64_t>> out;
  const int64_t card = conv.model().config().card;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<int64_t> user(kAudioCodebooks);
    for (int64_t q = 0; q < kAudioCodebooks; ++q) user[size_t(q)] = (s * 31 + q * 7) % card;
    auto r = conv.step_user(user);
    out.push_back(r ? r->tokens : std::vector<int64_t>{});
  }
  return out;
}

// What running the prompts gives, for this seed.
std::vector<std::vector<int64_t>> reference(const std::shared_ptr<const LmModel> &model, const Prompt &p,
                                            ConversationOptions o, uint64_t seed) {
  o.seed = seed;
  Conversation conv(model, o);
  run_prompts(conv, p);
  return talk(conv, 30);
}

std::vector<std::vector<int64_t>> through(PromptCache &cache, const std::shared_ptr<const LmModel> &model,
                                          const Prompt &p, ConversationOptions o, uint64_t seed, bool *hit) {
  o.seed = seed;
  Conversation conv(model, o);
  *hit = cache.run(conv, p);
  return talk(conv, 30);
}

}  // namespace

TEST(PromptCache, StartsWhereRunningThePromptsLeaves) {
  // With a cache in the model's dtype and in fp8 (its prefix copied with its scales).
  for (const auto &model : {tiny_model(), tiny_model()->with_kv_format(KvFormat::kFp8)}) {
    const LmConfig &c = model->config();
    for (const ConversationOptions &o : {test::greedy(), ConversationOptions{}}) {
      for (const Prompt &p : {codes_prompt(c, 4, {5, 6, 7}), stored_prompt(model, {9, 8}), Prompt{}}) {
        SCOPED_TRACE(std::string(o.sampling.greedy ? "greedy" : "sampled") +
                     (p.voice.stored.embeddings.defined() ? ", stored voice" : ""));
        PromptCache cache;
        bool hit = true;
        EXPECT_EQ(through(cache, model, p, o, 11, &hit), reference(model, p, o, 11));
        EXPECT_FALSE(hit);
        // Other seeds start from the first one's prompts.
        for (uint64_t seed : {11, 12, 13}) {
          EXPECT_EQ(through(cache, model, p, o, seed, &hit), reference(model, p, o, seed)) << "seed " << seed;
          EXPECT_TRUE(hit);
        }
        EXPECT_EQ(cache.misses(), 1);
        EXPECT_EQ(cache.hits(), 3);
      }
    }
  }
}

TEST(PromptCache, DifferentPromptsDoNotShare) {
  auto model = tiny_model();
  const LmConfig &c = model->config();
  PromptCache cache;
  bool hit = false;
  Prompt a = codes_prompt(c, 4, {5, 6, 7});
  Prompt b = a;
  b.text_tokens.back() = 8;
  Prompt d = a;
  d.voice.codes = a.voice.codes.clone();
  d.voice.codes[3][2] = (d.voice.codes[3][2].item<int64_t>() + 1) % c.card;
  Prompt e = a;
  e.silence_steps = 5;
  for (const Prompt *p : {&a, &b, &d, &e}) {
    EXPECT_EQ(through(cache, model, *p, test::greedy(), 1, &hit), reference(model, *p, test::greedy(), 1));
    EXPECT_FALSE(hit);
  }
  // Greedy and sampled runs draw differently: two entries.
  through(cache, model, a, ConversationOptions{}, 1, &hit);
  EXPECT_FALSE(hit);
  EXPECT_EQ(cache.misses(), 5);
  EXPECT_EQ(cache.hits(), 0);
  // Their voice phases: b and e (another role, other silences) start from
  // a's; d's voice and the sampled run's are their own.
  EXPECT_EQ(cache.voice_misses(), 3);
  EXPECT_EQ(cache.voice_hits(), 2);
  EXPECT_EQ(cache.voice_entries(), 3u);
}

// Calls with roles of their own and one voice: the voice phase runs once,
// each role on top of it, and every call is the one running its prompts
// gives, for any seed, with a codes or a stored voice, in either KV format.
TEST(PromptCache, RolesOfTheirOwnShareTheVoicePhase) {
  for (const auto &model : {tiny_model(), tiny_model()->with_kv_format(KvFormat::kFp8)}) {
    const LmConfig &c = model->config();
    for (const ConversationOptions &o : {test::greedy(), ConversationOptions{}}) {
      for (const Prompt &voice : {codes_prompt(c, 5, {}), stored_prompt(model, {})}) {
        SCOPED_TRACE(std::string(o.sampling.greedy ? "greedy" : "sampled") +
                     (voice.voice.stored.embeddings.defined() ? ", stored voice" : ""));
        PromptCache cache;
        const std::vector<std::vector<int64_t>> roles = {{5, 6, 7}, {9}, {}, {4, 4, 4, 4, 4, 4}};
        for (size_t r = 0; r < roles.size(); ++r) {
          Prompt p = voice;
          p.text_tokens = roles[r];
          bool hit = true;
          EXPECT_EQ(through(cache, model, p, o, 20 + r, &hit), reference(model, p, o, 20 + r)) << "role " << r;
          EXPECT_FALSE(hit);
        }
        EXPECT_EQ(cache.misses(), int64_t(roles.size()));
        EXPECT_EQ(cache.voice_misses(), 1);
        EXPECT_EQ(cache.voice_hits(), int64_t(roles.size()) - 1);
      }
    }
  }
}

// A voice cut short to fit the context is another voice phase.
TEST(PromptCache, AVoiceCutShortIsNotTheWholeVoice) {
  auto model = tiny_model(40);
  const LmConfig &c = model->config();
  PromptCache cache;
  Prompt whole = codes_prompt(c, 12, {4});
  Prompt cut = whole;
  cut.silence_steps = 12;  // with the silences over the budget, the voice loses frames
  ASSERT_LT(plan_prompts(c, cut).voice_frames, plan_prompts(c, whole).voice_frames);
  bool hit = true;
  for (const Prompt *p : {&whole, &cut}) {
    EXPECT_EQ(through(cache, model, *p, test::greedy(), 1, &hit), reference(model, *p, test::greedy(), 1));
    EXPECT_FALSE(hit);
  }
  EXPECT_EQ(cache.voice_misses(), 2);
  EXPECT_EQ(cache.voice_hits(), 0);
}

TEST(PromptCache, LeastRecentlyUsedGoesFirst) {
  auto model = tiny_model();
  const LmConfig &c = model->config();
  PromptCache cache(2);
  const Prompt a = codes_prompt(c, 3, {1}), b = codes_prompt(c, 3, {2}), d = codes_prompt(c, 3, {3});
  bool hit = false;
  for (const Prompt *p : {&a, &b, &a, &d, &a, &b}) through(cache, model, *p, test::greedy(), 1, &hit);
  // a, b missed; a hit; d missed (b went); a hit; b missed again.
  EXPECT_EQ(cache.misses(), 4);
  EXPECT_EQ(cache.hits(), 2);
  EXPECT_EQ(cache.entries(), 2u);
  PromptCache none(0);
  through(none, model, a, test::greedy(), 1, &hit);
  through(none, model, a, test::greedy(), 1, &hit);
  EXPECT_FALSE(hit);
  EXPECT_EQ(none.entries(), 0u);
}

TEST(PromptCache, WarningsComeAgainAndSteppedPromptsAreNotKept) {
  auto model = tiny_model(40);
  PromptCache cache;
  Prompt p;
  p.text_tokens.assign(size_t(model->config().context + 10), 20);  // truncated, with a warning
  for (int i = 0; i < 2; ++i) {
    std::vector<std::string> warnings;
    Conversation conv(model, test::greedy());
    EXPECT_EQ(cache.run(conv, p, [&](const std::string &w) { warnings.push_back(w); }), i == 1);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("truncated"), std::string::npos);
  }
  // Step by step, the prompts' steps sample (and are never kept); with kept
  // logits the conversation holds more than the cache keeps.
  Prompt stepped = codes_prompt(model->config(), 3, {4});
  stepped.prefill = false;
  ConversationOptions logits = test::greedy();
  logits.keep_logits = true;
  for (int i = 0; i < 2; ++i) {
    bool hit = true;
    EXPECT_EQ(through(cache, model, stepped, ConversationOptions{}, 3, &hit),
              reference(model, stepped, ConversationOptions{}, 3));
    EXPECT_FALSE(hit);
    EXPECT_EQ(through(cache, model, codes_prompt(model->config(), 3, {4}), logits, 3, &hit),
              reference(model, codes_prompt(model->config(), 3, {4}), logits, 3));
    EXPECT_FALSE(hit);
  }
}

// Calls that ask for one prompt at once: one runs it, the others wait for it.
TEST(PromptCache, ConcurrentCallersRunAPromptOnce) {
  auto model = tiny_model();
  const Prompt p = codes_prompt(model->config(), 6, {3, 4, 5, 6});
  PromptCache cache;
  constexpr int kCallers = 6;
  std::vector<std::vector<std::vector<int64_t>>> got(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i)
    threads.emplace_back([&, i] {
      bool hit = false;
      got[size_t(i)] = through(cache, model, p, ConversationOptions{}, uint64_t(100 + i), &hit);
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(cache.misses(), 1);
  EXPECT_EQ(cache.hits(), kCallers - 1);
  for (int i = 0; i < kCallers; ++i)
    EXPECT_EQ(got[size_t(i)], reference(model, p, ConversationOptions{}, uint64_t(100 + i))) << "caller " << i;
}

// Calls with roles of their own and one voice, at once: one runs the voice
// phase, the others wait for it and run their roles on top.
TEST(PromptCache, ConcurrentRolesRunTheirVoiceOnce) {
  auto model = tiny_model();
  const Prompt voice = codes_prompt(model->config(), 6, {});
  PromptCache cache;
  constexpr int kCallers = 6;
  std::vector<Prompt> prompts(kCallers, voice);
  for (int i = 0; i < kCallers; ++i) prompts[size_t(i)].text_tokens.assign(size_t(1 + i), 3 + i);
  std::vector<std::vector<std::vector<int64_t>>> got(kCallers);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCallers; ++i)
    threads.emplace_back([&, i] {
      bool hit = true;
      got[size_t(i)] = through(cache, model, prompts[size_t(i)], ConversationOptions{}, uint64_t(200 + i), &hit);
      EXPECT_FALSE(hit);
    });
  for (auto &t : threads) t.join();
  EXPECT_EQ(cache.misses(), kCallers);
  EXPECT_EQ(cache.voice_misses(), 1);
  EXPECT_EQ(cache.voice_hits(), kCallers - 1);
  for (int i = 0; i < kCallers; ++i)
    EXPECT_EQ(got[size_t(i)], reference(model, prompts[size_t(i)], ConversationOptions{}, uint64_t(200 + i)))
        << "caller " << i;
}
