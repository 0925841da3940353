#include "lm/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>

namespace personaplex::lm {

at::Tensor sample_token(const at::Tensor &logits, bool greedy, double temperature, int64_t top_k,
                        at::Generator &generator) {
  if (greedy || temperature <= 0.0) return logits.argmax(-1);
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / temperature, -1);
  at::Tensor candidates;  // undefined: the whole vocabulary
  if (top_k > 0 && top_k < probs.size(-1)) {
    auto top = at::topk(probs, top_k, -1);
    probs = std::get<0>(top);
    candidates = std::get<1>(top);
  }
  at::Tensor race = at::empty_like(probs).exponential_(1.0, generator);
  at::Tensor pick = (probs / race).argmax(-1, /*keepdim=*/true);
  if (candidates.defined()) pick = candidates.gather(-1, pick);
  return pick.squeeze(-1);
}

at::Generator make_generator(const at::Device &device, uint64_t seed) {
  at::Generator g = device.is_cuda() ? at::globalContext().defaultGenerator(device).clone()
                                     : at::make_generator<at::CPUGeneratorImpl>(seed);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(seed);
  return g;
}

}  // namespace personaplex::lm
