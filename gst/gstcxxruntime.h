// GStreamer opens plugins with RTLD_LOCAL, and a C program such as
// gst-launch-1.0 has no libstdc++ of its own: it then lives only in this
// plugin's local scope, where libraries that libtorch's CUDA libraries open
// later (cuDNN's parts) do not see it, and they bind C++ runtime symbols to
// the static copies that the pip wheels of libtorch carry instead: the
// first convolution on CUDA calls a null pointer. Promoting the C++ runtime
// to the global scope, as a C++ program has it, avoids that.
#pragma once

#include <string>
#include <vector>

namespace gstpersonaplex {

// Promotes the loaded libstdc++ and libgcc_s to RTLD_GLOBAL; returns their
// paths.
std::vector<std::string> cxx_runtime_to_global_scope();

}  // namespace gstpersonaplex
