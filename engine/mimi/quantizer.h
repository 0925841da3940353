// Mimi's split residual vector quantizer: a semantic RVQ (n_q_semantic
// levels) and an acoustic RVQ (the rest) both quantize the same latent, each
// through its own 1x1 input/output projections. Encoding picks, level after
// level, the codebook vector nearest (L2) to the residual; decoding sums the
// chosen vectors. Runs in fp32 whatever the model's dtype.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

#include "mimi/config.h"
#include "mimi/fused_quantizer.h"

namespace personaplex {
class SafeTensors;
}

namespace personaplex::mimi {

class SplitQuantizer {
 public:
  SplitQuantizer() = default;
  // Loads the levels that `num_codebooks` uses; codebooks are derived here once.
  static SplitQuantizer load(const SafeTensors &file, const QuantizerConfig &config,
                             int64_t num_codebooks, const at::Device &device);
  // Every tensor of the released layout, all n_q levels.
  static std::vector<std::pair<std::string, std::vector<int64_t>>> tensor_shapes(
      const QuantizerConfig &config);

  // latent [B, D, T] -> int64 codes [B, num_codebooks, T].
  at::Tensor encode(const at::Tensor &latent) const;
  // codes [B, num_codebooks, T] -> fp32 latent [B, D, T]. Throws Error naming
  // the first code outside [0, bins).
  at::Tensor decode(const at::Tensor &codes) const;
  void check_codes(const at::Tensor &codes) const;
  // decode() of codes already checked and on the device, in `dtype`: no
  // host sync.
  at::Tensor decode_unchecked(const at::Tensor &codes, at::ScalarType dtype = at::kFloat) const;

  int64_t num_codebooks() const;
  int64_t bins() const { return bins_; }

 private:
  struct Group {
    at::Tensor input_proj, output_proj;  // [Q, D, 1], [D, Q, 1]
    at::Tensor stacked, norms;           // [levels, bins, Q], [levels, bins]
    std::vector<at::Tensor> codebooks;   // each [bins, Q], a view of stacked
    std::vector<at::Tensor> extended;    // each [1, bins, Q+2]: the codebook side of cdist's
                                         // matmul form, computed once
    at::Tensor nearest(const at::Tensor &flat, size_t level) const;
    at::Tensor encode(const at::Tensor &latent) const;
    at::Tensor decode(const at::Tensor &codes) const;
  };
  static Group load_group(const SafeTensors &file, const std::string &prefix, const QuantizerConfig &c,
                          int64_t levels, const at::Device &device);

  Group first_, rest_;
  int64_t bins_ = 0;
  // For the CUDA kernels: both groups' input projections stacked [G * Q, D],
  // and each group's tensors.
  at::Tensor input_projs_;
  std::vector<QuantizerGroupTensors> kernel_groups_;
};

}  // namespace personaplex::mimi
