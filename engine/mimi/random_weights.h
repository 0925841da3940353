// Random Mimi weights in the released layout (every tensor name and shape the
// checkpoint has, for any configuration): for benchmarks and tiny test models.
// Values are small (weights ~ N(0, scale^2)) so activations stay finite.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mimi/config.h"

namespace personaplex::mimi {

// Every tensor of a Mimi checkpoint with this configuration, in file order.
std::vector<std::pair<std::string, std::vector<int64_t>>> mimi_tensor_shapes(const MimiConfig &config);

// Writes a float32 safetensors file of random weights; same seed, same file.
void write_random_weights(const std::string &path, const MimiConfig &config, uint64_t seed = 0,
                          double scale = 0.02);

}  // namespace personaplex::mimi
