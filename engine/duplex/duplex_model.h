// The shared bundle a duplex conversation runs on: the LM, Mimi and the text
// tokenizer, loaded once per (files, device, options) in a process and shared
// (std::shared_ptr<const DuplexModel>) by any number of Sessions.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>

#include "duplex/model_files.h"
#include "lm/model.h"
#include "mimi/mimi.h"
#include "nn/quantized_linear.h"
#include "text/tokenizer.h"

namespace personaplex::duplex {

// How a model is loaded: what a model of the same files differs by.
struct ModelOptions {
  at::ScalarType lm_dtype = at::kFloat;  // see default_dtype()
  // The LM's linear weights as loaded or in 8 bits (a model of another
  // format is another model).
  nn::WeightFormat weights = nn::WeightFormat::kAsLoaded;
  // How its conversations store their KV caches (models differing only in
  // it share the weights).
  lm::KvFormat kv = lm::KvFormat::kModelDtype;
  // Mimi in float32 gives the reference's codes; bf16 is faster (its
  // tolerances: tests/fixture/check_mimi.cpp).
  at::ScalarType mimi_dtype = at::kFloat;
  // LM layers whose weights stay in host memory and are uploaded each step
  // (lm::LmWeights::host_layers): less device memory, slower steps.
  int64_t host_layers = 0;
};

class DuplexModel {
 public:
  // The model these files name on `device`, loaded or shared. A Mimi is also
  // shared with other users of the same weights, config, device and dtype.
  // Throws Error naming the file at fault, also when the parts do not fit
  // together.
  static std::shared_ptr<const DuplexModel> acquire(const ModelFiles &files, const at::Device &device,
                                                    const ModelOptions &options);

  DuplexModel(ModelFiles files, std::shared_ptr<const lm::LmModel> lm,
              std::shared_ptr<const mimi::Mimi> mimi,
              std::shared_ptr<const text::Tokenizer> tokenizer);

  // The files loaded (voices_dir is left empty: voices are each user's own).
  const ModelFiles &files() const { return files_; }
  const std::shared_ptr<const lm::LmModel> &lm() const { return lm_; }
  const mimi::Mimi &mimi() const { return *mimi_; }
  const std::shared_ptr<const mimi::Mimi> &shared_mimi() const { return mimi_; }
  const text::Tokenizer &tokenizer() const { return *tokenizer_; }
  at::Device device() const { return lm_->device(); }

  int64_t frame_size() const { return mimi_->frame_size(); }
  int64_t sample_rate() const { return mimi_->sample_rate(); }

 private:
  ModelFiles files_;
  std::shared_ptr<const lm::LmModel> lm_;
  std::shared_ptr<const mimi::Mimi> mimi_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
};

}  // namespace personaplex::duplex
