#include "mimi/conv_product.h"

#include "core/env_choice.h"
#include "nn/quantized_linear.h"

namespace personaplex::mimi {

namespace {

// The product where it fits and where chosen: by default on CUDA when
// `by_default` holds.
bool product_chosen(int64_t length, int64_t groups, bool cuda, bool by_default) {
  if (groups != 1 || length <= 0 || length > kConvProductMaxLength) return false;
  if (env_choice_is("PERSONAPLEX_DEEP_CONV", "product")) return true;
  if (env_choice_is("PERSONAPLEX_DEEP_CONV", "libtorch")) return false;
  return cuda && by_default;
}

}  // namespace

bool conv_as_product_chosen(int64_t length, int64_t groups, bool cuda) {
  return product_chosen(length, groups, cuda, true);
}

bool conv_transpose_as_product_chosen(int64_t batch, int64_t length, int64_t groups, bool cuda) {
  return product_chosen(length, groups, cuda, batch * length <= kConvProductMaxLength);
}

at::Tensor conv_as_product(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias, int64_t stride,
                           int64_t dilation) {
  const int64_t B = x.size(0), C = x.size(1), C_out = weight.size(0), K = weight.size(2);
  const int64_t span = (K - 1) * dilation + 1, frames = (x.size(2) - span) / stride + 1;
  // [B, C, frames, span] -> the taps [B, C, frames, K] -> [B * frames, C * K],
  // (channel, tap) in the filter's own order.
  const at::Tensor windows = x.unfold(2, span, stride).slice(3, 0, span, dilation);
  const at::Tensor columns = windows.permute({0, 2, 1, 3}).reshape({B * frames, C * K});
  at::Tensor y = nn::linear(columns, nn::LinearWeight(weight.reshape({C_out, C * K})));
  if (bias.defined()) y.add_(bias);
  return y.view({B, frames, C_out}).transpose(1, 2).contiguous();
}

at::Tensor conv_transpose_as_product(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias,
                                     int64_t stride) {
  const int64_t B = x.size(0), C_in = x.size(1), T = x.size(2), C_out = weight.size(1), K = weight.size(2);
  const int64_t length = (T - 1) * stride + K;
  // [C_out * K, C_in] x [B, C_in, T]: what input t gives output t * stride
  // + k of channel c, at row c * K + k, the layout col2im adds up.
  const at::Tensor columns = at::matmul(weight.reshape({C_in, C_out * K}).t(), x);
  const int64_t one = 1, zero = 0;
  at::Tensor y = at::col2im(columns, {one, length}, {one, K}, {one, one}, {zero, zero}, {one, stride});
  y = y.view({B, C_out, length});
  if (bias.defined()) y.add_(bias.view({1, C_out, 1}));
  return y;
}

}  // namespace personaplex::mimi
