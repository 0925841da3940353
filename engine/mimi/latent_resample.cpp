#include "mimi/latent_resample.h"

namespace personaplex::mimi {

ConvSpec downsample_spec(const MimiConfig &config) {
  ConvSpec s;
  s.name = "downsample.conv.conv.conv";
  s.in_channels = s.out_channels = config.seanet.dimension;
  s.stride = config.resample_stride();
  s.kernel_size = 2 * s.stride;
  s.bias = false;
  s.pad_mode = PadMode::Replicate;
  return s;
}

ConvSpec upsample_spec(const MimiConfig &config) {
  ConvSpec s;
  s.name = "upsample.convtr.convtr.convtr";
  s.in_channels = s.out_channels = config.seanet.dimension;
  s.stride = config.resample_stride();
  s.kernel_size = 2 * s.stride;
  s.bias = false;
  s.groups = config.upsample_channel_wise ? config.seanet.dimension : 1;
  return s;
}

}  // namespace personaplex::mimi
