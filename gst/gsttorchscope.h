// GStreamer opens plugins with RTLD_LOCAL, so libtorch and the CUDA libraries
// it pulls in (cuDNN above all) load into a local scope. cuDNN 9 finds parts
// of itself through the global scope when its first handle is created, and
// from a local scope it calls a null pointer there: the first convolution
// on CUDA crashes. Promoting those already-loaded libraries to the global
// scope, as a directly linked program has them, avoids it.
#pragma once

#include <string>
#include <vector>

namespace gstpersonaplex {

// Promotes the loaded libtorch, c10 and CUDA math libraries to RTLD_GLOBAL;
// returns their paths. PERSONAPLEX_KEEP_LOCAL_SCOPE=1 leaves them local.
std::vector<std::string> torch_libraries_to_global_scope();

}  // namespace gstpersonaplex
