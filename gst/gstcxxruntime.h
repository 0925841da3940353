// GStreamer opens plugins with RTLD_LOCAL, and a C program such as
// gst-launch-1.0 has no libstdc++ of its own: it then lives only in this
// plugin's local scope, out of sight of the libraries that libtorch's CUDA
// libraries open later (cuDNN's parts), which may then bind C++ runtime
// symbols to the static copies that the pip wheels of libtorch carry. The
// plugin puts the C++ runtime in the global scope, as a C++ program has it.
// With pip's libtorch that has not been seen to be enough on its own: such
// builds also preload it (docs/gpu.md).
#pragma once

#include <string>
#include <vector>

namespace gstpersonaplex {

// Promotes the loaded libstdc++ and libgcc_s to RTLD_GLOBAL; returns their
// paths.
std::vector<std::string> cxx_runtime_to_global_scope();

}  // namespace gstpersonaplex
