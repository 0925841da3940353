#include "lm/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>

#include "lm/fused_sampling.h"

namespace personaplex::lm {

int64_t race_size(int64_t vocabulary, int64_t top_k) {
  return top_k > 0 && top_k < vocabulary ? top_k : vocabulary;
}

at::Tensor sample_with_noise(const at::Tensor &logits, bool greedy, double temperature, int64_t top_k,
                             const at::Tensor &noise) {
  if (greedy || temperature <= 0.0) return logits.argmax(-1);
  if (auto fused = fused_sample_top_k(logits, temperature, top_k, noise)) return *fused;
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / temperature, -1);
  at::Tensor candidates;  // undefined: the whole vocabulary
  if (race_size(probs.size(-1), top_k) < probs.size(-1)) {
    // The k most probable in token order: each draw goes with a token, not
    // with a place in the probability order, which rounding (another BLAS,
    // a batch of another size) swaps between near-equal candidates.
    auto top = at::topk(probs, top_k, -1, /*largest=*/true, /*sorted=*/false);
    auto in_order = std::get<1>(top).sort(-1);
    candidates = std::get<0>(in_order);
    probs = std::get<0>(top).gather(-1, std::get<1>(in_order));
  }
  at::Tensor pick = (probs / noise).argmax(-1, /*keepdim=*/true);
  if (candidates.defined()) pick = candidates.gather(-1, pick);
  return pick.squeeze(-1);
}

at::Tensor sample_token(const at::Tensor &logits, bool greedy, double temperature, int64_t top_k,
                        at::Generator &generator) {
  if (greedy || temperature <= 0.0) return logits.argmax(-1);
  auto shape = logits.sizes().vec();
  shape.back() = race_size(shape.back(), top_k);
  at::Tensor noise = at::empty(shape, logits.options().dtype(at::kFloat)).exponential_(1.0, generator);
  return sample_with_noise(logits, greedy, temperature, top_k, noise);
}

at::Generator make_generator(const at::Device &device, uint64_t seed) {
  at::Generator g = device.is_cuda() ? at::globalContext().defaultGenerator(device).clone()
                                     : at::make_generator<at::CPUGeneratorImpl>(seed);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(seed);
  return g;
}

}  // namespace personaplex::lm
