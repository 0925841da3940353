// The learnt latent resampling between the encoder's rate (sample_rate / hop)
// and the frame rate: a stride-S conv (kernel 2S, no bias, replicate left
// padding) down, a transposed conv (kernel 2S, no bias, depthwise in the
// released model) up. Absent when S == 1.
#pragma once

#include "mimi/config.h"
#include "mimi/conv.h"

namespace personaplex::mimi {

ConvSpec downsample_spec(const MimiConfig &config);
ConvSpec upsample_spec(const MimiConfig &config);

}  // namespace personaplex::mimi
