#include "serving/prompt_lengths.h"

namespace personaplex::serving {

std::vector<lm::Prompt> role_length_prompts(const lm::Prompt &prompt, const lm::LmConfig &config) {
  const int64_t fixed = 2 * prompt.silence_steps;
  // The room the voice leaves (plan_prompts' budget, text cut to fit).
  lm::Prompt longest = prompt;
  longest.text_tokens.assign(size_t(kWarmedLengthMax), config.text_pad_id());
  const int64_t room = lm::plan_prompts(config, longest).text_tokens;
  std::vector<lm::Prompt> prompts;
  for (int64_t length = kWarmedLengthStride; length <= kWarmedLengthMax; length += kWarmedLengthStride) {
    const int64_t tokens = length - fixed;
    if (tokens < 0) continue;
    if (tokens > room) break;
    lm::Prompt p = prompt;
    p.text_tokens.resize(size_t(tokens));
    for (int64_t i = 0; i < tokens; ++i)
      p.text_tokens[size_t(i)] = prompt.text_tokens.empty() ? config.text_pad_id()
                                                            : prompt.text_tokens[size_t(i) % prompt.text_tokens.size()];
    prompts.push_back(std::move(p));
  }
  return prompts;
}

}  // namespace personaplex::serving
