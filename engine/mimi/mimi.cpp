#include "mimi/mimi.h"

#include <ATen/core/grad_mode.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "mimi/conv.h"
#include "mimi/latent_transformer.h"
#include "mimi/quantizer.h"
#include "mimi/latent_resample.h"
#include "mimi/seanet.h"
#include "mimi/state.h"
#include "mimi/step_graph.h"

namespace personaplex::mimi {

struct Mimi::Impl {
  MimiConfig config;
  at::Device device{at::kCPU};
  at::ScalarType dtype = at::kFloat;

  Seanet encoder, decoder;
  LatentTransformer encoder_transformer, decoder_transformer;
  bool resample = false;  // false when the encoder already runs at the frame rate
  Conv1d downsample;
  ConvTranspose1d upsample;
  SplitQuantizer quantizer;

  at::Tensor to_latent(const at::Tensor &pcm) const;
  at::Tensor encode_step(const at::Tensor &pcm, MimiState &state) const;
  at::Tensor decode_step(const at::Tensor &codes, MimiState &state) const;
  at::Tensor from_latent(const at::Tensor &latent) const;
  void check_pcm(const at::Tensor &pcm, int64_t batch, bool one_frame) const;
};

namespace {

std::string frames_text(int64_t n) { return std::to_string(n); }

}  // namespace

void Mimi::Impl::check_pcm(const at::Tensor &pcm, int64_t batch, bool one_frame) const {
  const int64_t C = config.seanet.channels, F = config.frame_size();
  bool ok = pcm.defined() && pcm.dim() == 3 && pcm.size(1) == C && pcm.size(2) % F == 0 &&
            (!one_frame || pcm.size(2) == F) && (batch < 0 || pcm.size(0) == batch);
  if (!ok)
    throw Error("Mimi: expected pcm [" + (batch < 0 ? std::string("B") : std::to_string(batch)) + ", " +
                std::to_string(C) + ", " + (one_frame ? frames_text(F) : "N*" + frames_text(F)) + "], got " +
                (pcm.defined() ? shape_string(pcm.sizes()) : std::string("an undefined tensor")));
  if (!at::isFloatingType(pcm.scalar_type()))
    throw Error(std::string("Mimi: pcm must be floating point, got ") + c10::toString(pcm.scalar_type()));
}

at::Tensor Mimi::Impl::to_latent(const at::Tensor &pcm) const {
  at::Tensor z = encoder.forward(pcm.to(device, dtype));
  z = encoder_transformer.forward(z);
  return resample ? downsample.forward(z) : z;
}

at::Tensor Mimi::Impl::from_latent(const at::Tensor &latent) const {
  at::Tensor z = latent.to(dtype);
  if (resample) z = upsample.forward(z);
  z = decoder_transformer.forward(z);
  return decoder.forward(z).to(at::kFloat);
}

// One frame through the encoder; pcm already on the device in the model's dtype.
at::Tensor Mimi::Impl::encode_step(const at::Tensor &pcm, MimiState &state) const {
  at::Tensor z = encoder.step(pcm, state.encoder);
  z = encoder_transformer.step(z, state.encoder_transformer);
  if (resample) z = downsample.step(z, state.downsample);
  return quantizer.encode(z);
}

// One frame of checked int64 codes on the device through the decoder.
at::Tensor Mimi::Impl::decode_step(const at::Tensor &codes, MimiState &state) const {
  at::Tensor z = quantizer.decode_unchecked(codes, dtype);
  if (resample) z = upsample.step(z, state.upsample);
  z = decoder_transformer.step(z, state.decoder_transformer);
  return decoder.step(z, state.decoder).to(at::kFloat);
}

Mimi::Mimi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Mimi::~Mimi() = default;

std::shared_ptr<const Mimi> Mimi::load(const std::string &weights_path, const std::string &config_path,
                                       const at::Device &device, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kBFloat16 && dtype != at::kHalf)
    throw Error(std::string("Mimi: unsupported dtype ") + c10::toString(dtype));
  if (dtype == at::kHalf && device.is_cpu())
    throw Error("Mimi: float16 runs on CUDA only (libtorch's CPU convolutions have none); use float32 or bfloat16");
  at::NoGradGuard no_grad;
  auto impl = std::make_unique<Impl>();
  impl->config = config_path.empty() ? MimiConfig() : MimiConfig::from_json_file(config_path);
  impl->device = device;
  impl->dtype = dtype;
  const MimiConfig &c = impl->config;
  SafeTensors file(weights_path);
  impl->encoder = Seanet::load(file, c.seanet, Seanet::Role::Encoder, dtype, device);
  impl->decoder = Seanet::load(file, c.seanet, Seanet::Role::Decoder, dtype, device);
  impl->encoder_transformer = LatentTransformer::load(file, "encoder_transformer", c.transformer, dtype, device);
  impl->decoder_transformer = LatentTransformer::load(file, "decoder_transformer", c.transformer, dtype, device);
  impl->resample = c.resample_stride() > 1;
  if (impl->resample) {
    impl->downsample = Conv1d(downsample_spec(c), file, dtype, device);
    impl->upsample = ConvTranspose1d(upsample_spec(c), file, dtype, device);
  }
  impl->quantizer = SplitQuantizer::load(file, c.quantizer, c.num_codebooks, device);
  return std::shared_ptr<const Mimi>(new Mimi(std::move(impl)));
}

const MimiConfig &Mimi::config() const { return impl_->config; }
at::Device Mimi::device() const { return impl_->device; }
at::ScalarType Mimi::dtype() const { return impl_->dtype; }
int64_t Mimi::frame_size() const { return impl_->config.frame_size(); }
int64_t Mimi::sample_rate() const { return impl_->config.sample_rate; }
int64_t Mimi::num_codebooks() const { return impl_->config.num_codebooks; }
int64_t Mimi::codebook_size() const { return impl_->config.quantizer.bins; }

std::unique_ptr<MimiState> Mimi::new_state(int64_t batch) const {
  if (batch < 1) throw Error("Mimi: batch must be >= 1, got " + std::to_string(batch));
  at::NoGradGuard no_grad;
  const Impl &m = *impl_;
  auto options = at::TensorOptions().dtype(m.dtype).device(m.device);
  auto s = std::make_unique<MimiState>();
  s->batch = batch;
  s->encoder = m.encoder.new_state();
  s->decoder = m.decoder.new_state();
  s->encoder_transformer = m.encoder_transformer.new_state(batch, options);
  s->decoder_transformer = m.decoder_transformer.new_state(batch, options);
  if (StepGraph::available(m.device)) {
    s->encode_graph = std::make_shared<StepGraph>(m.device);
    s->decode_graph = std::make_shared<StepGraph>(m.device);
  }
  return s;
}

std::unique_ptr<MimiState> Mimi::new_rows_state(int64_t batch) const {
  auto s = new_state(batch);
  at::NoGradGuard no_grad;
  const Impl &m = *impl_;
  auto options = at::TensorOptions().dtype(m.dtype).device(m.device);
  s->active = at::ones({batch}, options.dtype(at::kBool));
  s->encoder = m.encoder.new_state(batch, s->active, options);
  s->decoder = m.decoder.new_state(batch, s->active, options);
  s->encoder_transformer = m.encoder_transformer.new_state(batch, options, s->active);
  s->decoder_transformer = m.decoder_transformer.new_state(batch, options, s->active);
  if (m.resample) {
    m.downsample.prime_rows(s->downsample, batch, s->active, options);
    m.upsample.prime_rows(s->upsample, batch, s->active, options);
  }
  return s;
}

void Mimi::reset_rows(MimiState &state, const std::vector<int64_t> &rows) const {
  if (!state.active.defined()) throw Error("Mimi: reset_rows needs a rows-mode state");
  at::NoGradGuard no_grad;
  const Impl &m = *impl_;
  at::Tensor host = at::zeros({state.batch}, at::kBool);
  for (int64_t r : rows) {
    if (r < 0 || r >= state.batch)
      throw Error("Mimi: row " + std::to_string(r) + " is outside [0, " + std::to_string(state.batch) + ")");
    host[r] = true;
  }
  at::Tensor mask = host.to(m.device);
  m.encoder.reset_rows(state.encoder, mask);
  m.decoder.reset_rows(state.decoder, mask);
  state.encoder_transformer.reset_rows(mask);
  state.decoder_transformer.reset_rows(mask);
  if (m.resample) {
    m.downsample.reset_rows(state.downsample, mask);
    m.upsample.reset_rows(state.upsample, mask);
  }
}

at::Tensor Mimi::encode_frame(const at::Tensor &pcm, MimiState &state) const {
  at::NoGradGuard no_grad;
  const Impl &m = *impl_;
  m.check_pcm(pcm, state.batch, /*one_frame=*/true);
  at::Tensor x = pcm.to(m.device, m.dtype);
  auto step = [&](const at::Tensor &in) { return m.encode_step(in, state); };
  return state.encode_graph ? state.encode_graph->run(x, step) : step(x);
}

at::Tensor Mimi::decode_frame(const at::Tensor &codes, MimiState &state) const {
  at::NoGradGuard no_grad;
  const Impl &m = *impl_;
  m.quantizer.check_codes(codes);
  if (codes.size(0) != state.batch || codes.size(2) != 1)
    throw Error("Mimi: decode_frame expects codes [" + std::to_string(state.batch) + ", " +
                std::to_string(num_codebooks()) + ", 1], got " + shape_string(codes.sizes()));
  at::Tensor x = codes.to(m.device, at::kLong);
  auto step = [&](const at::Tensor &in) { return m.decode_step(in, state); };
  return state.decode_graph ? state.decode_graph->run(x, step) : step(x);
}

at::Tensor Mimi::encode(const at::Tensor &pcm) const {
  at::NoGradGuard no_grad;
  impl_->check_pcm(pcm, -1, /*one_frame=*/false);
  return impl_->quantizer.encode(impl_->to_latent(pcm));
}

at::Tensor Mimi::decode(const at::Tensor &codes) const {
  at::NoGradGuard no_grad;
  return impl_->from_latent(impl_->quantizer.decode(codes));
}

at::Tensor Mimi::encode_to_latent(const at::Tensor &pcm) const {
  at::NoGradGuard no_grad;
  impl_->check_pcm(pcm, -1, /*one_frame=*/false);
  return impl_->to_latent(pcm).to(at::kFloat);
}

at::Tensor Mimi::dequantize(const at::Tensor &codes) const {
  at::NoGradGuard no_grad;
  return impl_->quantizer.decode(codes);
}

}  // namespace personaplex::mimi
