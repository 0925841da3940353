// The streaming transformer as Mimi uses it: streaming equals one call while
// the ring has not wrapped, and the ring labels its slots as the reference does.
#include <gtest/gtest.h>

#include "nn/kv_cache.h"
#include "nn/transformer.h"

using namespace personaplex::nn;

namespace {

TransformerWeights random_weights(const TransformerConfig &c) {
  TransformerWeights w;
  w.config = c;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    LayerWeights l;
    const int64_t D = c.d_model;
    l.norm1_w = 1 + 0.1 * at::randn({D});
    l.norm1_b = 0.1 * at::randn({D});
    l.norm2_w = 1 + 0.1 * at::randn({D});
    l.norm2_b = 0.1 * at::randn({D});
    l.in_proj = 0.3 * at::randn({3 * D, D});
    l.out_proj = 0.3 * at::randn({D, D});
    l.mlp_in = 0.3 * at::randn({c.dim_feedforward, D});
    l.mlp_out = 0.3 * at::randn({D, c.dim_feedforward});
    l.scale1 = at::full({D}, 0.5);
    l.scale2 = at::full({D}, 0.5);
    w.layers.push_back(l);
  }
  return w;
}

TransformerConfig small_config(int64_t context) {
  TransformerConfig c;
  c.d_model = 16;
  c.num_heads = 2;
  c.num_layers = 2;
  c.dim_feedforward = 32;
  c.context = context;
  c.layer_scale = true;
  return c;
}

}  // namespace

TEST(MimiTransformer, StreamingMatchesWholeWithinContext) {
  Transformer t(random_weights(small_config(32)));
  at::Tensor x = at::randn({2, 20, 16});
  at::Tensor whole = t.forward(x);
  TransformerState state = t.new_state(2, at::TensorOptions().dtype(at::kFloat));
  std::vector<at::Tensor> parts;
  for (int64_t i = 0; i < 20; i += 2) parts.push_back(t.forward(x.narrow(1, i, 2), state));
  EXPECT_TRUE(at::allclose(at::cat(parts, 1), whole, 1e-5, 1e-5));
}

TEST(MimiTransformer, WholeSequenceHonoursTheContext) {
  // With a 4-step window, step 10 must not depend on step 0.
  Transformer t(random_weights(small_config(4)));
  at::Tensor x = at::randn({1, 11, 16});
  at::Tensor y = t.forward(x);
  at::Tensor x2 = x.clone();
  x2.select(1, 0).add_(at::randn({1, 16}) * 5.0);  // not a constant: LayerNorm would hide that
  at::Tensor y2 = t.forward(x2);
  EXPECT_TRUE(at::allclose(y.select(1, 10), y2.select(1, 10)));
  EXPECT_FALSE(at::allclose(y.select(1, 1), y2.select(1, 1)));
}

TEST(MimiKVCache, LabelsSlotsLikeTheReference) {
  // The reference's labels for a ring of capacity C after E steps:
  // delta = s - E % C; delta <= 0 ? E + delta : E + delta - C; -1 if s >= E.
  const int64_t C = 4;
  RingKVCache cache(1, 1, C, 2, at::TensorOptions().dtype(at::kFloat));
  for (int64_t E = 1; E <= 11; ++E) {
    cache.append(at::randn({1, 1, 1, 2}), at::randn({1, 1, 1, 2}));
    at::Tensor pos = cache.positions();
    for (int64_t s = 0; s < C; ++s) {
      int64_t delta = s - E % C;
      int64_t want = s >= E ? -1 : delta <= 0 ? E + delta : E + delta - C;
      EXPECT_EQ(pos[s].item<int64_t>(), want) << "slot " << s << " after " << E << " steps";
    }
  }
}
