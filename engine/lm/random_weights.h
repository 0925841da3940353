// Random LM weights of any configuration, built in memory on the device (the
// released size would be a 16.7 GB file): for benchmarks and tests. Values
// are small (N(0, scale^2), norms 1) so activations stay finite. Linear
// weights are drawn in `dtype` then stored in `format`, one at a time: the
// same seed gives the same model before quantization in every format.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

#include "lm/weights.h"

namespace personaplex::lm {

std::shared_ptr<const LmWeights> random_lm_weights(const LmConfig &config, const at::Device &device,
                                                   at::ScalarType dtype, uint64_t seed = 0,
                                                   double scale = 0.02,
                                                   WeightFormat format = WeightFormat::kAsLoaded);

// Every tensor of the released LM file for this configuration: the names
// and shapes LmWeights::load reads.
std::vector<TensorSpec> lm_weight_specs(const LmConfig &config, at::ScalarType dtype);

// Writes random weights in the released layout, one tensor at a time.
void write_random_lm_weights(const std::string &path, const LmConfig &config, at::ScalarType dtype,
                             uint64_t seed = 0, double scale = 0.02);

}  // namespace personaplex::lm
