#include "duplex/duplex_model.h"

#include "core/device.h"
#include "core/error.h"
#include "core/shared_cache.h"
#include "lm/config.h"

namespace personaplex::duplex {
namespace {

std::string key_of(const std::string &weights, const std::string &config, const at::Device &device,
                   at::ScalarType dtype) {
  return file_identity(weights) + "|" + file_identity(config) + "|" + device.str() + "|" +
         dtype_name(dtype);
}

// The key format is the one the Mimi elements use, so they share it too.
std::shared_ptr<const mimi::Mimi> acquire_mimi(const ModelFiles &f, const at::Device &device, at::ScalarType dtype) {
  return shared_cache<mimi::Mimi>().get(key_of(f.mimi_weights, f.mimi_config, device, dtype), [&] {
    return mimi::Mimi::load(f.mimi_weights, f.mimi_config, device, dtype);
  });
}

std::shared_ptr<const lm::LmModel> acquire_lm(const ModelFiles &f, const at::Device &device,
                                              at::ScalarType dtype, nn::WeightFormat format,
                                              int64_t host_layers) {
  const std::string key = key_of(f.lm_weights, f.lm_config, device, dtype) + "|" +
                          nn::weight_format_name(format) + "|host " + std::to_string(host_layers);
  return shared_cache<lm::LmModel>().get(key, [&] {
    return lm::LmModel::load(f.lm_weights, f.lm_config, device, dtype, format, host_layers);
  });
}

std::shared_ptr<const text::Tokenizer> acquire_tokenizer(const ModelFiles &f) {
  return shared_cache<text::Tokenizer>().get(file_identity(f.tokenizer), [&] {
    return std::make_shared<const text::Tokenizer>(f.tokenizer);
  });
}

// The LM's streams must be Mimi's codes and the tokenizer's ids.
void check_fit(const ModelFiles &f, const lm::LmModel &lm, const mimi::Mimi &mimi,
               const text::Tokenizer &tok) {
  const lm::LmConfig &c = lm.config();
  if (c.card != mimi.codebook_size() || c.user_codebooks() != mimi.num_codebooks())
    throw Error("LM weights \"" + f.lm_weights + "\" expect " + std::to_string(c.user_codebooks()) +
                " codebooks of " + std::to_string(c.card) + " entries, Mimi weights \"" +
                f.mimi_weights + "\" give " + std::to_string(mimi.num_codebooks()) + " of " +
                std::to_string(mimi.codebook_size()));
  if (tok.vocab_size() < c.text_card)
    throw Error("text tokenizer \"" + f.tokenizer + "\" has " + std::to_string(tok.vocab_size()) +
                " pieces, the LM's text vocabulary " + std::to_string(c.text_card));
}

}  // namespace

DuplexModel::DuplexModel(ModelFiles files, std::shared_ptr<const lm::LmModel> lm,
                         std::shared_ptr<const mimi::Mimi> mimi,
                         std::shared_ptr<const text::Tokenizer> tokenizer)
    : files_(std::move(files)), lm_(std::move(lm)), mimi_(std::move(mimi)), tokenizer_(std::move(tokenizer)) {
  check_fit(files_, *lm_, *mimi_, *tokenizer_);
  files_.voices_dir.clear();  // not part of the model: each user has its own
}

std::shared_ptr<const DuplexModel> DuplexModel::acquire(const ModelFiles &f, const at::Device &device,
                                                        const ModelOptions &o) {
  const std::string key = key_of(f.lm_weights, f.lm_config, device, o.lm_dtype) + "|" +
                          nn::weight_format_name(o.weights) + "|host " + std::to_string(o.host_layers) +
                          "|kv " + lm::kv_format_name(o.kv) + "|" +
                          key_of(f.mimi_weights, f.mimi_config, device, o.mimi_dtype) + "|" +
                          file_identity(f.tokenizer);
  return shared_cache<DuplexModel>().get(key, [&] {
    auto mimi = acquire_mimi(f, device, o.mimi_dtype);
    auto tok = acquire_tokenizer(f);
    auto lm = acquire_lm(f, device, o.lm_dtype, o.weights, o.host_layers);
    if (o.kv != lm->kv_format()) lm = lm->with_kv_format(o.kv);
    return std::make_shared<const DuplexModel>(f, std::move(lm), std::move(mimi), std::move(tok));
  });
}

}  // namespace personaplex::duplex
