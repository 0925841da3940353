#include "demo_model.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace personaplex::tools {

// Small enough to be made in seconds and to step faster than real time on
// one CPU core; the streams, delays and codebooks are the released ones.
const char *const kDemoLmConfigJson = R"({
 "dim": 128, "num_heads": 4, "num_layers": 2, "hidden_scale": 4.125,
 "text_card": 512, "existing_text_padding_id": 3,
 "n_q": 16, "dep_q": 16, "card": 2048,
 "causal": true, "layer_scale": null, "context": 3000, "max_period": 10000,
 "gating": "silu", "norm": "rms_norm_f32", "positional_embedding": "rope",
 "depformer_dim": 64, "depformer_dim_feedforward": 264, "depformer_num_heads": 2,
 "depformer_num_layers": 2, "depformer_causal": true, "depformer_layer_scale": null,
 "depformer_multi_linear": true, "depformer_context": 8, "depformer_max_period": 10000,
 "depformer_gating": "silu", "depformer_pos_emb": "none", "depformer_weights_per_step": true,
 "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1]
}
)";

const char *const kDemoMimiConfigJson = R"({
 "seanet": {"channels": 1, "dimension": 32, "causal": true, "n_filters": 8, "n_residual_layers": 1,
  "activation": "ELU", "compress": 2, "dilation_base": 2, "disable_norm_outer_blocks": 0,
  "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 3, "norm": "none",
  "pad_mode": "constant", "ratios": [8, 6, 5, 4], "true_skip": true},
 "transformer": {"d_model": 32, "num_heads": 2, "num_layers": 2, "causal": true, "layer_scale": 0.01,
  "context": 250, "conv_layout": true, "max_period": 10000, "gating": "none", "norm": "layer_norm",
  "positional_embedding": "rope", "dim_feedforward": 64, "input_dimension": 32, "output_dimensions": [32]},
 "quantizer": {"dimension": 16, "n_q": 32, "bins": 2048, "input_dimension": 32, "output_dimension": 32},
 "sample_rate": 24000, "frame_rate": 12.5, "num_codebooks": 8, "resample_method": "conv"
}
)";

std::string demo_model_dir() {
  const char *xdg = std::getenv("XDG_CACHE_HOME");
  const char *home = std::getenv("HOME");
  std::string cache;
  if (xdg && *xdg == '/')
    cache = xdg;
  else if (home && *home)
    cache = std::string(home) + "/.cache";
  else
    throw Error("neither XDG_CACHE_HOME nor HOME is set: give --output DIR for the demo model");
  return cache + "/gst-personaplex/demo-model-1";
}

void make_directories(const std::string &path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string part = path.substr(0, slash);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST)
      throw Error(part + ": cannot create the directory (" + std::strerror(errno) + ")");
    if (slash == std::string::npos) return;
  }
}

}  // namespace personaplex::tools
