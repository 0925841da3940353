// The server's model when none is named: ./personaplex-7b-v1 when it is
// there, else the demo model that personaplex-make-model --demo makes once
// into the user's cache directory (tiny, random weights: the page can be
// tried at once on a CPU, and it speaks noise). The pipeline scripts do the
// same (pipelines/lib/default-model.sh).
#pragma once

#include <string>

namespace ppserver {

// The model directory, after saying on stdout when it is the demo; "" with
// `error` set when the demo model cannot be made.
std::string default_model_dir(std::string *error);

}  // namespace ppserver
