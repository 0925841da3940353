#include "mimi/seanet.h"

#include "io/safetensors.h"

namespace personaplex::mimi {
namespace {

using Layer = Seanet::Layer;
using Kind = Seanet::Layer::Kind;

// Builds the reference's nn.Sequential, one index per module.
class PlanBuilder {
 public:
  PlanBuilder(const SeanetConfig &c, const std::string &prefix) : c_(c), prefix_(prefix) {}

  void elu() {
    plan.layers.push_back({Kind::Elu});
    ++index_;
  }

  void conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1) {
    plan.layers.push_back({Kind::Conv, add_conv(here() + ".conv.conv", in, out, kernel, stride, 1)});
    ++index_;
  }

  void convtr(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
    ConvSpec s;
    s.name = here() + ".convtr.convtr";
    s.in_channels = in;
    s.out_channels = out;
    s.kernel_size = kernel;
    s.stride = stride;
    plan.convtrs.push_back(s);
    plan.layers.push_back({Kind::ConvTr, int64_t(plan.convtrs.size()) - 1});
    ++index_;
  }

  // ELU, conv K (dilated), ELU, conv 1, plus the skip.
  void residual(int64_t dim, int64_t dilation) {
    const int64_t hidden = dim / c_.compress;
    Layer l{Kind::Residual};
    l.index = add_conv(here() + ".block.1.conv.conv", dim, hidden, c_.residual_kernel_size, 1, dilation);
    add_conv(here() + ".block.3.conv.conv", hidden, dim, 1, 1, 1);
    l.length = 2;
    if (!c_.true_skip) l.shortcut = add_conv(here() + ".shortcut.conv.conv", dim, dim, 1, 1, 1);
    plan.layers.push_back(l);
    ++index_;
  }

  void residuals(int64_t dim) {
    int64_t dilation = 1;
    for (int64_t j = 0; j < c_.n_residual_layers; ++j, dilation *= c_.dilation_base) residual(dim, dilation);
  }

  Seanet::Plan plan;

 private:
  std::string here() const { return prefix_ + std::to_string(index_); }

  int64_t add_conv(const std::string &name, int64_t in, int64_t out, int64_t kernel, int64_t stride,
                   int64_t dilation) {
    ConvSpec s;
    s.name = name;
    s.in_channels = in;
    s.out_channels = out;
    s.kernel_size = kernel;
    s.stride = stride;
    s.dilation = dilation;
    s.pad_mode = c_.pad_mode;
    plan.convs.push_back(s);
    return int64_t(plan.convs.size()) - 1;
  }

  const SeanetConfig &c_;
  std::string prefix_;
  int64_t index_ = 0;
};

}  // namespace

void SeanetState::reset() {
  for (auto &s : convs) s.reset();
  for (auto &s : convtrs) s.reset();
}

Seanet::Plan Seanet::plan(const SeanetConfig &c, Role role) {
  const int64_t nf = c.n_filters;
  if (role == Role::Encoder) {
    PlanBuilder b(c, "encoder.model.");
    int64_t mult = 1;
    b.conv(c.channels, nf, c.kernel_size);
    for (auto it = c.ratios.rbegin(); it != c.ratios.rend(); ++it) {
      b.residuals(mult * nf);
      b.elu();
      b.conv(mult * nf, 2 * mult * nf, 2 * *it, *it);
      mult *= 2;
    }
    b.elu();
    b.conv(mult * nf, c.dimension, c.last_kernel_size);
    return b.plan;
  }
  PlanBuilder b(c, "decoder.model.");
  int64_t mult = int64_t(1) << c.ratios.size();
  b.conv(c.dimension, mult * nf, c.kernel_size);
  for (int64_t ratio : c.ratios) {
    b.elu();
    b.convtr(mult * nf, mult * nf / 2, 2 * ratio, ratio);
    b.residuals(mult * nf / 2);
    mult /= 2;
  }
  b.elu();
  b.conv(nf, c.channels, c.last_kernel_size);
  return b.plan;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> Seanet::tensor_shapes(const SeanetConfig &config,
                                                                               Role role) {
  Plan p = plan(config, role);
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const auto &s : p.convs)
    for (auto &t : s.tensor_shapes(false)) out.push_back(std::move(t));
  for (const auto &s : p.convtrs)
    for (auto &t : s.tensor_shapes(true)) out.push_back(std::move(t));
  return out;
}

Seanet Seanet::load(const SafeTensors &file, const SeanetConfig &config, Role role, at::ScalarType dtype,
                    const at::Device &device) {
  Seanet s;
  s.plan_ = plan(config, role);
  s.alpha_ = config.elu_alpha;
  for (const auto &spec : s.plan_.convs) s.convs_.emplace_back(spec, file, dtype, device);
  for (const auto &spec : s.plan_.convtrs) s.convtrs_.emplace_back(spec, file, dtype, device);
  return s;
}

SeanetState Seanet::new_state() const {
  SeanetState st;
  st.convs.resize(convs_.size());
  st.convtrs.resize(convtrs_.size());
  return st;
}

SeanetState Seanet::new_state(int64_t batch, const at::Tensor &active, const at::TensorOptions &options) const {
  SeanetState st = new_state();
  for (size_t i = 0; i < convs_.size(); ++i) convs_[i].prime_rows(st.convs[i], batch, active, options);
  for (size_t i = 0; i < convtrs_.size(); ++i) convtrs_[i].prime_rows(st.convtrs[i], batch, active, options);
  return st;
}

void Seanet::reset_rows(SeanetState &state, const at::Tensor &mask) const {
  for (size_t i = 0; i < convs_.size(); ++i) convs_[i].reset_rows(state.convs[i], mask);
  for (size_t i = 0; i < convtrs_.size(); ++i) convtrs_[i].reset_rows(state.convtrs[i], mask);
}

// What the layer after `n` reads of its input: an ELU layer its ELU, a
// residual block both (its branch the ELU, its skip the value), anything
// else the value.
ConvEpilogue Seanet::epilogue_for(size_t n) const {
  ConvEpilogue e;
  e.alpha = alpha_;
  if (n + 1 >= plan_.layers.size()) return e;
  const Kind next = plan_.layers[n + 1].kind;
  e.raw = next != Kind::Elu;
  e.elu = next == Kind::Elu || next == Kind::Residual;
  return e;
}

// The layers in order, each conv and transposed conv giving the ELU its
// next layer needs along with (or instead of) its value, so that no ELU
// runs on its own where a kernel takes it. conv(i, x, epilogue) and
// convtr(i, x, epilogue) -> ConvOutput.
template <typename ConvFn, typename ConvTrFn>
at::Tensor Seanet::run(const at::Tensor &input, ConvFn conv, ConvTrFn convtr) const {
  at::Tensor x = input, x_elu;  // the current value, and its ELU where already taken
  auto elu_of_x = [&] { return x_elu.defined() ? x_elu : at::elu(x, alpha_); };
  for (size_t n = 0; n < plan_.layers.size(); ++n) {
    const Layer &l = plan_.layers[n];
    switch (l.kind) {
      case Kind::Elu:
        x = elu_of_x();
        x_elu = at::Tensor();
        break;
      case Kind::Conv: {
        ConvOutput o = conv(l.index, x, epilogue_for(n));
        x = o.raw, x_elu = o.elu;
        break;
      }
      case Kind::ConvTr: {
        ConvOutput o = convtr(l.index, x, epilogue_for(n));
        x = o.raw, x_elu = o.elu;
        break;
      }
      case Kind::Residual: {
        // ELU, conv, ELU, conv, ..., then the skip added by the last conv.
        ConvEpilogue inner;
        inner.alpha = alpha_;
        inner.raw = false;
        inner.elu = true;
        at::Tensor y = elu_of_x();
        for (int64_t i = 0; i + 1 < l.length; ++i) y = conv(l.index + i, y, inner).elu;
        ConvEpilogue last = epilogue_for(n);
        if (l.shortcut >= 0) {
          last.raw = true;
          last.elu = false;
          at::Tensor branch = conv(l.index + l.length - 1, y, last).raw;
          x = conv(l.shortcut, x, ConvEpilogue{}).raw + branch;
          x_elu = epilogue_for(n).elu ? at::elu(x, alpha_) : at::Tensor();
        } else {
          last.skip = x;
          ConvOutput o = conv(l.index + l.length - 1, y, last);
          x = o.raw, x_elu = o.elu;
        }
        break;
      }
    }
  }
  return x.defined() ? x : x_elu;
}

at::Tensor Seanet::forward(const at::Tensor &x) const {
  return run(
      x,
      [&](int64_t i, const at::Tensor &t, const ConvEpilogue &e) {
        at::Tensor y = convs_[i].forward(t);
        if (e.skip.defined()) y = e.skip + y;
        return ConvOutput{y, e.elu ? at::elu(y, e.alpha) : at::Tensor()};
      },
      [&](int64_t i, const at::Tensor &t, const ConvEpilogue &e) {
        at::Tensor y = convtrs_[i].forward(t);
        return ConvOutput{y, e.elu ? at::elu(y, e.alpha) : at::Tensor()};
      });
}

at::Tensor Seanet::step(const at::Tensor &x, SeanetState &state) const {
  return run(
      x, [&](int64_t i, const at::Tensor &t, const ConvEpilogue &e) { return convs_[i].step(t, state.convs[i], e); },
      [&](int64_t i, const at::Tensor &t, const ConvEpilogue &e) { return convtrs_[i].step(t, state.convtrs[i], e); });
}

}  // namespace personaplex::mimi
