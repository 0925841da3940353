#include "mimi/conv_filters.h"

#include "core/env_choice.h"

namespace personaplex::mimi {

at::Tensor channels_last_filter(const at::Tensor &w) {
  TORCH_CHECK(w.dim() == 3, "a 1-d convolution's filter has three dimensions");
  return w.transpose(1, 2).contiguous().transpose(1, 2);
}

at::Tensor libtorch_filter(const at::Tensor &w) {
  if (!w.defined() || !env_choice_is("PERSONAPLEX_CONV_FILTERS", "nhwc")) return w;
  return channels_last_filter(w);
}

}  // namespace personaplex::mimi
