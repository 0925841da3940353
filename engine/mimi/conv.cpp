#include "mimi/conv.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "mimi/conv_filters.h"
#include "mimi/conv_product.h"
#include "mimi/fused_conv.h"
#include "mimi/fused_conv_transpose.h"

namespace personaplex::mimi {
namespace {

at::Tensor empty_time(const at::Tensor &x, int64_t channels) {
  return at::empty({x.size(0), channels, 0}, x.options());
}

// Keeps `tail` as the state buffer: in place when the size is unchanged (the
// steady state of frame-sized calls, so the buffer's address is stable, as a
// CUDA graph needs), else in a buffer of its own (never a view of the input).
void keep(at::Tensor &buffer, const at::Tensor &tail) {
  if (buffer.defined() && buffer.sizes() == tail.sizes())
    buffer.copy_(tail);
  else
    buffer = tail.clone();
}

// The new context of a step: only the rows that stepped take it (rows mode).
void keep_context(ConvState &state, at::Tensor tail) {
  if (state.active.defined()) tail = at::where(state.active.view({-1, 1, 1}), tail, state.previous);
  keep(state.previous, tail);
}

void check_input(const ConvSpec &spec, const at::Tensor &x) {
  if (x.dim() != 3 || x.size(1) != spec.in_channels)
    throw Error(spec.name + ": expected input [B, " + std::to_string(spec.in_channels) +
                ", T], got " + shape_string(x.sizes()));
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> ConvSpec::tensor_shapes(bool transposed) const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  if (transposed)
    out.push_back({name + ".weight", {in_channels, out_channels / groups, kernel_size}});
  else
    out.push_back({name + ".weight", {out_channels, in_channels / groups, kernel_size}});
  if (bias) out.push_back({name + ".bias", {out_channels}});
  return out;
}

// ---- Conv1d ----

Conv1d::Conv1d(const ConvSpec &spec, const SafeTensors &file, at::ScalarType dtype,
               const at::Device &device)
    : spec_(spec) {
  auto shapes = spec.tensor_shapes(false);
  weight_ = file.load(shapes[0].first, dtype, device, shapes[0].second);
  if (spec.bias) bias_ = file.load(shapes[1].first, dtype, device, shapes[1].second);
  libtorch_weight_ = libtorch_filter(weight_);
}

Conv1d::Conv1d(const ConvSpec &spec, at::Tensor weight, at::Tensor bias)
    : spec_(spec), weight_(std::move(weight)), bias_(std::move(bias)), libtorch_weight_(libtorch_filter(weight_)) {}

at::Tensor Conv1d::conv(const at::Tensor &x) const {
  const int64_t stride = spec_.stride, padding = 0, dilation = spec_.dilation;
  const int64_t frames = (x.size(2) - effective_kernel()) / stride + 1;
  if (conv_as_product_chosen(frames, spec_.groups, x.is_cuda()))
    return conv_as_product(x, weight_, bias_, stride, dilation);
  // A channels-last filter gives a channels-last output: made plain again
  // for the layers after it.
  return at::conv1d(x, libtorch_weight_, bias_, at::IntArrayRef(stride), at::IntArrayRef(padding),
                    at::IntArrayRef(dilation), spec_.groups)
      .contiguous();
}

at::Tensor Conv1d::pad(const at::Tensor &x, int64_t left, int64_t right) const {
  if (left == 0 && right == 0) return x;
  if (spec_.pad_mode == PadMode::Constant) return at::constant_pad_nd(x, {left, right}, 0);
  // Replicate by concatenation: works for every dtype and device.
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2);
  std::vector<at::Tensor> parts;
  if (left > 0) parts.push_back(x.narrow(2, 0, 1).expand({B, C, left}));
  parts.push_back(x);
  if (right > 0) parts.push_back(x.narrow(2, T - 1, 1).expand({B, C, right}));
  return at::cat(parts, 2);
}

at::Tensor Conv1d::forward(const at::Tensor &x) const {
  check_input(spec_, x);
  const int64_t T = x.size(2), S = spec_.stride;
  if (T == 0) return empty_time(x, spec_.out_channels);
  // Pad the right end so that the last window is full (the reference's
  // pad_for_conv1d): the output then has ceil(T / S) samples.
  const int64_t extra = (S - T % S) % S;
  return conv(pad(x, padding_total(), extra));
}

ConvOutput Conv1d::step(const at::Tensor &input, ConvState &state, const ConvEpilogue &e) const {
  if (std::optional<ConvOutput> out = fused_step(input, state, e)) return *out;
  at::Tensor y = step(input, state);
  if (e.skip.defined()) y = e.skip + y;
  return {e.raw ? y : at::Tensor(), e.elu ? at::elu(y, e.alpha) : at::Tensor()};
}

std::optional<ConvOutput> Conv1d::fused_step(const at::Tensor &input, ConvState &state, const ConvEpilogue &e) const {
  check_input(spec_, input);
  const int64_t T_in = input.size(2), K = effective_kernel(), S = spec_.stride, B = input.size(0);
  if (T_in == 0 || state.fresh.defined()) return std::nullopt;
  // The window: the kept context (or, at the start, the padding) and the
  // input; the outputs it gives.
  const int64_t P = !state.started ? padding_total() : state.previous.defined() ? state.previous.size(2) : 0;
  const int64_t T = P + T_in, frames = T >= K ? (T - K) / S + 1 : 0;
  if (!fused_conv_takes(input, weight_, spec_.groups, frames)) return std::nullopt;
  if (!state.started) {
    // The left padding as a kept context (zeros, or the first sample).
    state.previous = pad(input.narrow(2, 0, 1), P, 0).narrow(2, 0, P).contiguous();
    state.started = true;
  }
  const at::Tensor previous = state.previous.defined() ? state.previous : empty_time(input, spec_.in_channels);
  ConvOutput out;
  if (frames > 0) {
    if (e.skip.defined() && (e.skip.sizes() != at::IntArrayRef{B, spec_.out_channels, frames} ||
                             e.skip.scalar_type() != input.scalar_type()))
      throw Error(spec_.name + ": skip of shape " + shape_string(e.skip.sizes()) + " for " +
                  std::to_string(frames) + " outputs");
    out = fused_conv(input, previous.contiguous(), weight_, bias_, e, spec_.stride, spec_.dilation, frames);
  } else {
    if (e.raw) out.raw = empty_time(input, spec_.out_channels);
    if (e.elu) out.elu = empty_time(input, spec_.out_channels);
  }
  // The new context, from where the last window ended: read after the
  // kernel, which was queued first, has read the old one.
  const int64_t from = frames * S;
  keep_context(state, from >= P ? input.narrow(2, from - P, T - from)
                                : at::cat({previous.narrow(2, from, P - from), input}, 2));
  return out;
}

at::Tensor Conv1d::step(const at::Tensor &input, ConvState &state) const {
  check_input(spec_, input);
  at::Tensor x = input;
  if (!state.started && x.size(2) > 0) {
    x = pad(x, padding_total(), 0);
    state.started = true;
  } else if (state.fresh.defined() && x.size(2) > 0) {
    // Restarted rows: their first sample is their left context.
    at::Tensor first = x.narrow(2, 0, 1).expand_as(state.previous);
    state.previous.copy_(at::where(state.fresh.view({-1, 1, 1}), first, state.previous));
    state.fresh.logical_and_(state.active.logical_not());
  }
  if (state.previous.defined() && state.previous.size(2) > 0) x = at::cat({state.previous, x}, 2);
  const int64_t T = x.size(2), K = effective_kernel(), S = spec_.stride;
  const int64_t frames = T >= K ? (T - K) / S + 1 : 0;
  keep_context(state, x.narrow(2, frames * S, T - frames * S));
  if (frames == 0) return empty_time(x, spec_.out_channels);
  return conv(x.narrow(2, 0, (frames - 1) * S + K));
}

void Conv1d::prime_rows(ConvState &state, int64_t batch, const at::Tensor &active,
                        const at::TensorOptions &options) const {
  state.previous = at::zeros({batch, spec_.in_channels, padding_total()}, options);
  state.started = true;
  state.active = active;
  if (spec_.pad_mode == PadMode::Replicate)
    state.fresh = at::ones({batch}, options.dtype(at::kBool));
}

void Conv1d::reset_rows(ConvState &state, const at::Tensor &mask) const {
  state.previous.masked_fill_(mask.view({-1, 1, 1}), 0);
  if (state.fresh.defined()) state.fresh.logical_or_(mask);
}

// ---- ConvTranspose1d ----

ConvTranspose1d::ConvTranspose1d(const ConvSpec &spec, const SafeTensors &file, at::ScalarType dtype,
                                 const at::Device &device)
    : spec_(spec) {
  auto shapes = spec.tensor_shapes(true);
  weight_ = file.load(shapes[0].first, dtype, device, shapes[0].second);
  if (spec.bias) bias_ = file.load(shapes[1].first, dtype, device, shapes[1].second);
  libtorch_weight_ = libtorch_filter(weight_);
}

ConvTranspose1d::ConvTranspose1d(const ConvSpec &spec, at::Tensor weight, at::Tensor bias)
    : spec_(spec), weight_(std::move(weight)), bias_(std::move(bias)), libtorch_weight_(libtorch_filter(weight_)) {}

// A depthwise transposed conv with K = m*S as m shifted products, added:
// output block j (S samples) = sum_i x[j - i] * w[:, i*S:(i+1)*S]. A handful
// of elementwise kernels, where libtorch's CPU path runs one small
// transposed conv per channel.
static at::Tensor depthwise_convtr(const at::Tensor &x, const at::Tensor &weight, const at::Tensor &bias,
                            int64_t stride) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), m = weight.size(2) / stride;
  at::Tensor w = weight.view({C, m, stride});
  at::Tensor xp = at::constant_pad_nd(x, {m - 1, m - 1}, 0);
  at::Tensor y;
  for (int64_t i = 0; i < m; ++i) {
    at::Tensor term = xp.narrow(2, m - 1 - i, T + m - 1).unsqueeze(-1) * w.select(1, i).view({1, C, 1, stride});
    y = y.defined() ? y + term : term;
  }
  y = y.reshape({B, C, (T + m - 1) * stride});
  return bias.defined() ? y + bias.view({1, C, 1}) : y;
}

at::Tensor ConvTranspose1d::convtr(const at::Tensor &x) const {
  const ConvSpec &s = spec_;
  if (s.groups == s.in_channels && s.groups == s.out_channels && s.kernel_size % s.stride == 0)
    return depthwise_convtr(x, weight_, bias_, s.stride);
  if (conv_transpose_as_product_chosen(x.size(0), x.size(2), s.groups, x.is_cuda()))
    return conv_transpose_as_product(x, weight_, bias_, s.stride);
  const int64_t stride = spec_.stride, zero = 0, one = 1;
  auto run = [&](const at::Tensor &in, const at::Tensor &w, const at::Tensor &b) {
    return at::conv_transpose1d(in, w, b, at::IntArrayRef(stride), at::IntArrayRef(zero), at::IntArrayRef(zero),
                                spec_.groups, at::IntArrayRef(one));
  };
  // libtorch's CPU (mkldnn) transposed convolution rejects bf16 input in some
  // versions (1.13): that one runs in fp32 there, rounded back after.
  if (x.is_cpu() && x.scalar_type() == at::kBFloat16)
    return run(x.to(at::kFloat), weight_.to(at::kFloat), bias_.defined() ? bias_.to(at::kFloat) : bias_)
        .to(at::kBFloat16);
  return run(x, libtorch_weight_, bias_).contiguous();  // plain again after a channels-last filter
}

at::Tensor ConvTranspose1d::forward(const at::Tensor &x) const {
  check_input(spec_, x);
  if (x.size(2) == 0) return empty_time(x, spec_.out_channels);
  at::Tensor y = convtr(x);
  // Causal: all of the K-S padding is trimmed on the right.
  return y.narrow(2, 0, y.size(2) - (spec_.kernel_size - spec_.stride));
}

ConvOutput ConvTranspose1d::step(const at::Tensor &x, ConvTrState &state, const ConvEpilogue &e) const {
  check_input(spec_, x);
  if (x.size(2) > 0 && fused_conv_transpose_takes(x, weight_, spec_, state))
    return fused_conv_transpose(x, weight_, bias_, spec_, state, e);
  at::Tensor y = libtorch_step(x, state);
  return {e.raw || !e.elu ? y : at::Tensor(), e.elu ? at::elu(y, e.alpha) : at::Tensor()};
}

at::Tensor ConvTranspose1d::step(const at::Tensor &x, ConvTrState &state) const { return step(x, state, {}).raw; }

at::Tensor ConvTranspose1d::libtorch_step(const at::Tensor &x, ConvTrState &state) const {
  if (x.size(2) == 0) return empty_time(x, spec_.out_channels);
  at::Tensor out = convtr(x);
  const int64_t OT = out.size(2), overlap = spec_.kernel_size - spec_.stride;
  if (state.partial.defined()) {
    // The kept samples already hold the bias once; the new output adds it again.
    at::Tensor carry = bias_.defined() ? state.partial - bias_.view({-1, 1}) : state.partial;
    out.narrow(2, 0, carry.size(2)).add_(carry);
  }
  at::Tensor tail = out.narrow(2, OT - overlap, overlap);
  if (state.active.defined()) tail = at::where(state.active.view({-1, 1, 1}), tail, state.partial);
  keep(state.partial, tail);
  return out.narrow(2, 0, OT - overlap);
}

// A fresh stream carries nothing over; the kept samples hold the bias once
// (see step), so nothing is the bias.
void ConvTranspose1d::prime_rows(ConvTrState &state, int64_t batch, const at::Tensor &active,
                                 const at::TensorOptions &options) const {
  const int64_t overlap = spec_.kernel_size - spec_.stride;
  state.partial = at::zeros({batch, spec_.out_channels, overlap}, options);
  if (bias_.defined()) state.partial.add_(bias_.view({1, -1, 1}));
  state.active = active;
}

void ConvTranspose1d::reset_rows(ConvTrState &state, const at::Tensor &mask) const {
  at::Tensor none = bias_.defined() ? bias_.view({1, -1, 1}).expand_as(state.partial)
                                    : at::zeros_like(state.partial);
  state.partial.copy_(at::where(mask.view({-1, 1, 1}), none, state.partial));
}

}  // namespace personaplex::mimi
